// Signing in: an API key typed into a password field, or, when the API has OIDC configured,
// the authorization-code flow with PKCE against the issuer (a public client: no secret). Either
// way the credential ends in this tab's sessionStorage only; the authorization code the issuer
// sends back is exchanged at once and removed from the address bar.

import { api, h, session, show, errorBox, ROOT } from "./api.js";

const PENDING = "relai.oidc";

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomText(bytes = 32) {
  return base64url(crypto.getRandomValues(new Uint8Array(bytes)));
}

function redirectUri() {
  return new URL("console", ROOT).href;
}

async function startOidc(oidc, returnTo) {
  const verifier = randomText(48);
  const state = randomText();
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, returnTo }));
  const target = new URL(oidc.authorization_endpoint);
  const params = {
    response_type: "code",
    client_id: oidc.client_id,
    redirect_uri: redirectUri(),
    scope: oidc.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  };
  if (oidc.audience && oidc.audience !== oidc.client_id) params.audience = oidc.audience;
  for (const [name, value] of Object.entries(params)) target.searchParams.set(name, value);
  location.assign(target.href);
}

/** Back from the issuer (`?code=&state=` on /console): trade the code for tokens and keep the
 * one the API checks. Returns the page to go back to, or null when this is no such return. */
export async function finishOidc(oidc) {
  const here = new URL(location.href);
  const code = here.searchParams.get("code");
  const error = here.searchParams.get("error");
  if (!code && !error) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  history.replaceState(null, "", here.pathname + here.hash);
  if (error) throw new Error(`the identity provider refused: ${error} ${here.searchParams.get("error_description") || ""}`);
  if (!pending || pending.state !== here.searchParams.get("state")) {
    throw new Error("this sign-in was not started here (its state does not match): sign in again");
  }
  if (!oidc) throw new Error("OIDC sign-in is not available now");
  const answer = await fetch(oidc.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri(),
      client_id: oidc.client_id,
      code_verifier: pending.verifier,
    }),
  });
  const tokens = await answer.json().catch(() => ({}));
  if (!answer.ok) throw new Error(`the token endpoint answered ${answer.status}: ${tokens.error || ""} ${tokens.error_description || ""}`);
  const token = oidc.audience === oidc.client_id ? tokens.id_token : tokens.access_token || tokens.id_token;
  if (!token) throw new Error("the identity provider returned no token");
  session.set(token);
  return pending.returnTo || "";
}

export async function signinConfig() {
  try {
    return (await api("/console/config")).oidc;
  } catch {
    return null;
  }
}

/** The sign-in form; `done()` runs once a credential is kept. */
export function signinView(target, { oidc, title, done, returnTo = "" }) {
  const out = h("div");
  const key = h("input", {
    type: "password", name: "credential", id: "credential", autocomplete: "off",
    placeholder: "rk_...", required: true, spellcheck: "false",
  });
  const form = h("form", { class: "card signin", onsubmit: async (event) => {
    event.preventDefault();
    session.set(key.value.trim());
    key.value = "";
    try {
      await api("/me");
      done();
    } catch (error) {
      session.clear();
      show(out, errorBox(error));
    }
  } },
    h("h1", {}, title),
    h("label", { for: "credential" }, "API key"),
    key,
    h("button", { type: "submit" }, "Sign in"),
    h("p", { class: "muted" }, "The key stays in this tab (sessionStorage) until you sign out or close it."),
  );
  if (oidc) {
    form.append(h("p", {}, h("button", { type: "button", class: "secondary", onclick: () => startOidc(oidc, returnTo) },
      `Sign in with ${new URL(oidc.issuer).host}`)));
  }
  form.append(out);
  show(target, form);
}
