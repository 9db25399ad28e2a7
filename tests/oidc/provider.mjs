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

import http from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import Provider from 'oidc-provider';

const redirectUri = process.env.OIDC_REDIRECT_URI;
if (!redirectUri) {
  console.error('OIDC_REDIRECT_URI is required');
  process.exit(2);
}
const accounts = JSON.parse(process.env.OIDC_ACCOUNTS || '{}');

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

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
  server.on('request', provider.callback());
  console.log(`ready ${issuer}`);
});

process.on('SIGTERM', () => process.exit(0));
// A reader that went away must not crash the provider.
process.stdout.on('error', () => {});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
