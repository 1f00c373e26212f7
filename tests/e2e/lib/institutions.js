// Institutions, staff and their tokens the way the city makes them: an
// institution applies and the owner approves it with an access range, the secretariat
// registers its terminals, the ops-manager issues the accounts its manager requests. For the
// access-control and abnormal-access tests.
import assert from 'node:assert/strict';
import { api, postForm, TOKEN_ENDPOINT, newKeyPair, firstLogin, authorizeCode } from './auth.js';

export { authorizeCode };

/** Every information category read-write (conformance/kasama/categories.json). */
export const FULL = Object.fromEntries(['demographics', 'care', 'checkup', 'medical', 'directory', 'privacy'].map((c) => [c, 'read-write']));

/** An approved institution with a backend terminal: { id, managerRequest, client }. */
export async function institution(s, name, categories) {
  const applied = await api('POST', '/admin/institutions', { body: { name, manager: { name: `${name} manager` } } });
  assert.equal(applied.status, 201, applied.text);
  const approved = await api('POST', `/admin/institutions/${applied.json.id}/approve`, { session: s.owner.session, body: { categories } });
  assert.equal(approved.status, 200, approved.text);
  assert.deepEqual(approved.json.details.access, categories, 'the range granted is kept as given');
  const key = newKeyPair('ES384');
  const client = await api('POST', '/admin/clients', {
    session: s.secretariat.session,
    body: { name: `${name} system`, kind: 'backend', institution: applied.json.id, scope: 'system/*.cruds', jwks: { keys: [key.jwk] } },
  });
  assert.equal(client.status, 201, client.text);
  return { id: applied.json.id, managerRequest: approved.json.managerAccountRequest, client: { clientId: client.json.clientId, kid: key.kid, alg: 'ES384', privateKeyPem: key.privateKeyPem } };
}

/** A confidential terminal of the institution for staff logins: { clientId, clientSecret }. */
export async function terminal(s, institutionId, redirectUri) {
  const term = await api('POST', '/admin/clients', { session: s.secretariat.session,
    body: { name: 'Staff terminal', kind: 'confidential', institution: institutionId, redirectUris: [redirectUri], scope: 'user/*.cruds' } });
  assert.equal(term.status, 201, term.text);
  return { clientId: term.json.clientId, clientSecret: term.json.clientSecret };
}

/** An account request issued by the ops-manager and made usable: { id, session, password }. */
export async function issue(s, requestId, fhirUser) {
  const issued = await api('POST', `/admin/accounts/${requestId}/issue`, { session: s['ops-manager'].session, body: fhirUser ? { fhirUser } : {} });
  assert.equal(issued.status, 200, issued.text);
  const a = await firstLogin(issued.json.account.id, issued.json.initialPassword);
  return { id: issued.json.account.id, session: a.session, password: a.password };
}

/** A staff member requested by the institution's manager and issued. */
export async function staffOf(s, managerSession, name) {
  const req = await api('POST', '/admin/accounts/requests', { session: managerSession, body: { name } });
  assert.equal(req.status, 201, req.text);
  return issue(s, req.json.id);
}

/**
 * A user token through the authorization-code flow on a terminal ({ clientId, clientSecret }
 * for a confidential one, { clientId } for a public one): the token response.
 */
export async function userToken(session, scope, terminalClient, redirectUri) {
  const a = await authorizeCode({ session, clientId: terminalClient.clientId, redirectUri, scope });
  assert.equal(a.status, 302, a.html);
  assert.ok(a.params.code, a.location);
  const form = { grant_type: 'authorization_code', code: a.params.code, redirect_uri: redirectUri, code_verifier: a.verifier };
  const t = terminalClient.clientSecret
    ? await postForm(TOKEN_ENDPOINT, form, { basic: [terminalClient.clientId, terminalClient.clientSecret] })
    : await postForm(TOKEN_ENDPOINT, { ...form, client_id: terminalClient.clientId });
  assert.equal(t.status, 200, t.text);
  return t.json;
}
