// A real OpenID Connect provider (node-oidc-provider, a certified implementation) on a loopback
// port, for Steward's single sign-on tests. Its development login form accepts any login with any
// password; the login typed names the account, whose claims come from OIDC_ACCOUNTS.
//
// Environment:
//   OIDC_PORT           port to listen on, 0 (default) for any free one
//   OIDC_REDIRECT_URI   the client's one redirect URI (Steward's <public url>/sso/callback)
//   OIDC_CLIENT_ID      default "steward"
//   OIDC_CLIENT_SECRET  default "steward-test-secret"
//   OIDC_ACCOUNTS       JSON {"login": {"email": "...", "name": "...", "groups": ["..."]}}
//
// Prints "ready <issuer>" on stdout once it serves.
//
// For the refusal tests, `POST /test/id-token/<mode>` makes the token endpoint hand out spoilt ID
// tokens until the mode is set back to `none`: `tamper` (a claim changed after signing),
// `audience` (signed for another client), `expired` (signed an hour after it expired) and
// `unknown-kid` (signed by a key the JWKS never publishes).

import http from 'node:http';
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import Provider from 'oidc-provider';

const redirectUri = process.env.OIDC_REDIRECT_URI;
if (!redirectUri) {
  console.error('OIDC_REDIRECT_URI is required');
  process.exit(2);
}
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };
const strayKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

const spoils = ['none', 'tamper', 'audience', 'expired', 'unknown-kid'];
let spoil = 'none';

const part = (json) => Buffer.from(JSON.stringify(json)).toString('base64url');
const signed = (header, payload, key) => {
  const input = `${part(header)}.${part(payload)}`;
  return `${input}.${sign('sha256', Buffer.from(input), key).toString('base64url')}`;
};

/** The ID token as the current mode spoils it. */
function spoilt(token) {
  const [h, p, signature] = token.split('.');
  const header = JSON.parse(Buffer.from(h, 'base64url'));
  const payload = JSON.parse(Buffer.from(p, 'base64url'));
  const now = Math.floor(Date.now() / 1000);
  switch (spoil) {
    case 'tamper': return `${h}.${part({ ...payload, email: 'mallory@acme.test' })}.${signature}`;
    case 'audience': return signed(header, { ...payload, aud: 'another-client' }, privateKey);
    case 'expired': return signed(header, { ...payload, iat: now - 7200, exp: now - 3600 }, privateKey);
    case 'unknown-kid': return signed({ ...header, kid: 'never-published' }, payload, strayKey);
    default: return token;
  }
}

const server = http.createServer();
server.listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: process.env.OIDC_CLIENT_ID || 'steward',
      client_secret: process.env.OIDC_CLIENT_SECRET || 'steward-test-secret',
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    jwks: { keys: [signingKey] },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    pkce: { required: () => true },
    scopes: ['openid', 'email', 'profile', 'groups'],
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
      groups: ['groups'],
    },
    // A first-party client: no consent screen, only the login form.
    loadExistingGrant: async (ctx) => {
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope('openid email profile groups');
      await grant.save();
      return grant;
    },
    async findAccount(ctx, id) {
      const known = accounts[id] || { email: `${id}@unknown.test`, name: id, groups: [] };
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: known.email,
            email_verified: known.email_verified ?? true,
            name: known.name,
            groups: known.groups || [],
          };
        },
      };
    },
  });
  provider.use(async (ctx, next) => {
    await next();
    if (ctx.path === '/token' && ctx.body?.id_token) ctx.body = { ...ctx.body, id_token: spoilt(ctx.body.id_token) };
  });
  const serve = provider.callback();
  server.on('request', (req, res) => {
    const mode = req.method === 'POST' && req.url.startsWith('/test/id-token/') && req.url.slice(15);
    if (mode === false) return serve(req, res);
    if (!spoils.includes(mode)) return res.writeHead(400).end();
    spoil = mode;
    return res.writeHead(204).end();
  });
  console.log(`ready ${issuer}`);
});

process.on('SIGTERM', () => process.exit(0));
// A reader that went away must not crash the provider.
process.stdout.on('error', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
