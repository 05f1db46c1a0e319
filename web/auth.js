// Sign-in as MSAL.js does it against Entra ID: the authorization-code flow with PKCE (S256) on
// the server's built-in authority. The access token lives in sessionStorage (gone with the tab),
// and is attached to API calls as a Bearer token by api.js.

const TOKEN_KEY = 'securescore.session';
const PENDING_KEY = 'securescore.pkce';

function base64url(bytes) {
  let s = '';
  for (const b of new Uint8Array(bytes)) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function random(n = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(n)));
}

async function challengeOf(verifier) {
  return base64url(await crypto.subtle.digest('SHA-256', new TextEncoder().encode(verifier)));
}

/** Go to the sign-in page; the browser comes back to config.redirectUri with a code. */
export async function signIn(config) {
  const verifier = random(48);
  const state = random(16);
  const nonce = random(16);
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ verifier, state }));
  const params = new URLSearchParams({
    client_id: config.clientId,
    response_type: 'code',
    redirect_uri: config.redirectUri,
    scope: config.scope,
    state,
    nonce,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: 'S256',
    response_mode: 'query',
  });
  location.assign(`${config.authority}/oauth2/v2.0/authorize?${params}`);
}

function claims(jwt) {
  try {
    const part = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    return JSON.parse(atob(part));
  } catch {
    return {};
  }
}

/**
 * If the page was opened by the authority's redirect, trade the code for a token. Returns an
 * error message to show, or null. The code and state are removed from the address bar either way.
 */
export async function completeSignIn(config) {
  const params = new URLSearchParams(location.search);
  if (!params.has('code') && !params.has('error')) return null;
  history.replaceState(null, '', location.pathname);
  const pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) || 'null');
  sessionStorage.removeItem(PENDING_KEY);
  if (params.has('error')) return params.get('error_description') || params.get('error');
  if (!pending || pending.state !== params.get('state')) {
    return 'The sign-in answer does not belong to this tab (state mismatch). Please sign in again.';
  }
  const body = new URLSearchParams({
    grant_type: 'authorization_code',
    client_id: config.clientId,
    code: params.get('code'),
    redirect_uri: config.redirectUri,
    code_verifier: pending.verifier,
    scope: config.scope,
  });
  const r = await fetch(`${config.authority}/oauth2/v2.0/token`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body,
  });
  const answer = await r.json().catch(() => ({}));
  if (!r.ok || !answer.access_token) {
    return answer.error_description || answer.error || `The token endpoint answered ${r.status}.`;
  }
  const who = claims(answer.id_token || answer.access_token);
  sessionStorage.setItem(
    TOKEN_KEY,
    JSON.stringify({
      token: answer.access_token,
      expiresAt: Date.now() + (answer.expires_in - 30) * 1000,
      user: who.preferred_username || who.upn || who.name || '',
    }),
  );
  return null;
}

/** The session, if signed in and not expired: {token, user}. */
export function session() {
  const s = JSON.parse(sessionStorage.getItem(TOKEN_KEY) || 'null');
  if (!s || s.expiresAt <= Date.now()) return null;
  return s;
}

export function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
}
