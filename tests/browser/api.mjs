// Steward's JSON API as the browser tests call it to set up what a page shows: a bearer token,
// JSON both ways, the status and the parsed body back.
export async function call(base, bearer, method, path, body) {
  const res = await fetch(`${base}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${bearer}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : null };
}
