import { env } from 'cloudflare:workers';
import { describe, expect, it } from 'vitest';
import { api, expectProblem, newUser, uniqueEmail } from './helpers';
import { REFRESH_REUSE_LEEWAY_MS } from '../../workers/users/service';
import { EMAIL_CEILING, attemptStatements, clientOf } from '../../workers/users/throttle';

describe('clientOf', () => {
  it('keeps IPv4 as is and IPv6 by its /64, written one way', () => {
    expect(clientOf('203.0.113.7')).toBe('203.0.113.7');
    expect(clientOf('2001:DB8:0001:0002:aaaa::1')).toBe('2001:db8:1:2::/64');
    expect(clientOf('2001:db8:1:2::5')).toBe('2001:db8:1:2::/64');
    expect(clientOf('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientOf('::1')).toBe('0:0:0:0::/64');
    expect(clientOf('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(clientOf(null)).toBe('');
  });
});

describe('users and tokens', () => {
  it('registers, logs in, and never returns or stores the password in clear', async () => {
    const email = uniqueEmail();
    const password = 'correct horse battery';
    const reg = await api('POST', '/users', { body: { email, password } });
    expect(reg.status).toBe(201);
    expect(Object.keys(reg.body).sort()).toEqual(['created_at', 'email', 'id']);
    expect(JSON.stringify(reg.body)).not.toContain(password);
    const row = await env.DB.prepare('SELECT password_hash FROM users WHERE id = ?').bind(reg.body.id).first<{ password_hash: string }>();
    expect(row!.password_hash).toMatch(/^pbkdf2-sha256\$100000\$/);
    expect(row!.password_hash).not.toContain(password);

    const tok = await api('POST', '/tokens', { body: { email: email.toUpperCase(), password } });
    expect(tok.status).toBe(201);
    expect(tok.body).toMatchObject({ token_type: 'Bearer', expires_in: 900 });
    expect(tok.body.access_token.split('.')).toHaveLength(3);
    const me = await api('GET', '/users/me', { token: tok.body.access_token });
    expect(me.status).toBe(200);
    expect(me.body).toMatchObject({ id: reg.body.id, email, orgs: [] });
    expect(JSON.stringify(me.body)).not.toMatch(/password/);
  });

  it('rejects duplicates, bad bodies and wrong passwords with problem+json', async () => {
    const u = await newUser();
    expect(expectProblem(await api('POST', '/users', { body: { email: u.email, password: 'another password' } }), 409).code).toBe('conflict');
    const short = expectProblem(await api('POST', '/users', { body: { email: uniqueEmail(), password: 'short' } }), 422);
    expect(short.detail).toContain('password');
    expectProblem(await api('POST', '/users', { body: { email: 'not-an-email', password: 'long enough pw' } }), 422);
    expect(expectProblem(await api('POST', '/users', { raw: '{"email":', headers: { 'content-type': 'application/json' } }), 400).code).toBe('malformed_request');
    expectProblem(await api('POST', '/users', { raw: 'email=a', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415);
    expectProblem(await api('POST', '/tokens', { body: { email: u.email, password: 'wrong password' } }), 401);
    expectProblem(await api('POST', '/tokens', { body: { email: uniqueEmail(), password: 'whatever pw' } }), 401);
  });

  it('throttles log-ins per email: 6 attempts at once, then each waits 1 s, 2 s … (429, Retry-After) before its password is checked; a success clears it', async () => {
    const u = await newUser();
    const attempt = (password: string, email = u.email) => api('POST', '/tokens', { body: { email, password } });
    for (let i = 0; i < 6; i++) expectProblem(await attempt('wrong password'), 401);
    // The seventh comes too soon: refused before its password is looked at, the right one too, whatever the email's case.
    const refused = await attempt(u.password, u.email.toUpperCase());
    expect(expectProblem(refused, 429).code).toBe('login_throttled');
    expect(refused.headers.get('retry-after')).toBe('1');
    await new Promise((r) => setTimeout(r, 1100));
    expectProblem(await attempt('wrong password'), 401); // counted: the next waits 2 s
    const longer = await attempt(u.password);
    expect(expectProblem(longer, 429).detail).toMatch(/try again in 2 s/);
    await new Promise((r) => setTimeout(r, 2100));
    expect((await attempt(u.password)).status).toBe(201);
    // Cleared: six free attempts again.
    for (let i = 0; i < 6; i++) expectProblem(await attempt('wrong password'), 401);
    expectProblem(await attempt(u.password), 429);
  });

  it('counts attempts sent at once one by one: of 20 parallel guesses only the free 6 reach the password check; unknown emails are throttled alike', async () => {
    const u = await newUser();
    const statuses = await Promise.all(Array.from({ length: 20 }, () => api('POST', '/tokens', { body: { email: u.email, password: 'wrong password' } }).then((r) => r.status)));
    expect(statuses.filter((s) => s === 401)).toHaveLength(6);
    expect(statuses.filter((s) => s === 429)).toHaveLength(14);
    const nobody = uniqueEmail();
    const unknown = [];
    for (let i = 0; i < 7; i++) unknown.push((await api('POST', '/tokens', { body: { email: nobody, password: 'whatever pw' } })).status);
    expect(unknown).toEqual([401, 401, 401, 401, 401, 401, 429]);
  });

  it('throttles per address: a guesser elsewhere neither holds the owner out nor gets a fresh budget from the owner\'s log-ins', async () => {
    const u = await newUser();
    const from = (ip: string, password: string) => api('POST', '/tokens', { body: { email: u.email, password }, headers: { 'cf-connecting-ip': ip } });
    const guesser = async () => (await from('203.0.113.7', 'wrong password')).status;
    const guesses = [];
    for (let i = 0; i < 10; i++) guesses.push(await guesser());
    expect(guesses).toEqual([401, 401, 401, 401, 401, 401, 429, 429, 429, 429]);
    // Refused while the address waits, attempts cost it nothing — and do not spend the email's hour
    // either: the hour counts exactly the attempts that reached the password check (a flood on a
    // loaded machine may outlast the 1 s wait and let one more through).
    const flood = await Promise.all(Array.from({ length: 150 }, () => guesser()));
    const checked = flood.filter((st) => st === 401).length;
    expect(flood.filter((st) => st !== 401 && st !== 429)).toEqual([]);
    expect(checked).toBeLessThanOrEqual(2);
    const hour = await env.DB.prepare('SELECT failures FROM login_failures WHERE subject = ?').bind(`${u.email.toLowerCase()}\n*`).first<{ failures: number }>();
    expect(hour?.failures).toBe(6 + checked);
    expect((await from('198.51.100.1', u.password)).status).toBe(201); // the owner, elsewhere
    expect(await guesser()).toBe(429); // still waiting: the owner's success cleared only the owner's address
    // One host's IPv6 addresses are one address (its /64).
    const v6 = [];
    for (let i = 1; i <= 7; i++) v6.push((await from(`2001:db8:1:2::${i}`, 'wrong password')).status);
    expect(v6).toEqual([401, 401, 401, 401, 401, 401, 429]);
  });

  it('counts toward the email\'s hour only the attempts its address let through, even within one millisecond', async () => {
    const email = uniqueEmail('ms');
    const now = Date.now();
    for (let i = 0; i < 120; i++) await env.DB.batch(attemptStatements(env.DB, email, '203.0.113.9', now));
    const rows = await env.DB.prepare('SELECT subject, failures FROM login_failures WHERE subject LIKE ? ORDER BY subject').bind(`${email.toLowerCase()}%`).all<{ subject: string; failures: number }>();
    // Six went through (the seventh must wait 1 s), and the hour holds those six, not all 120.
    expect(rows.results.map((r) => r.failures)).toEqual([6, 6]);
  });

  it(`caps the attempts for an email that do not succeed at ${EMAIL_CEILING} an hour, whatever the addresses: then every address waits`, async () => {
    const u = await newUser();
    const from = (ip: string, password: string) => api('POST', '/tokens', { body: { email: u.email, password }, headers: { 'cf-connecting-ip': ip } });
    const spread = await Promise.all(Array.from({ length: EMAIL_CEILING }, (_, i) => from(`10.0.${i >> 8}.${i & 255}`, 'wrong password').then((r) => r.status)));
    expect(spread.every((s) => s === 401)).toBe(true);
    const owner = await from('198.51.100.1', u.password);
    expect(expectProblem(owner, 429).code).toBe('login_throttled');
    expect(Number(owner.headers.get('retry-after'))).toBeGreaterThan(3000);
  }, 60_000);

  it('rotates refresh tokens: each works once', async () => {
    const u = await newUser();
    const r1 = await api('POST', '/tokens/refresh', { body: { refresh_token: u.refresh } });
    expect(r1.status).toBe(201);
    expect(r1.body.refresh_token).not.toBe(u.refresh);
    expectProblem(await api('POST', '/tokens/refresh', { body: { refresh_token: u.refresh } }), 401);
    expect((await api('POST', '/tokens/revoke', { body: { refresh_token: r1.body.refresh_token } })).status).toBe(204);
    expectProblem(await api('POST', '/tokens/refresh', { body: { refresh_token: r1.body.refresh_token } }), 401);
  });

  it('a used refresh token given again ends its whole session (RFC 9700 §4.14.2); at once after its use it is only refused (two tabs)', async () => {
    const u = await newUser();
    const second = await api('POST', '/tokens', { body: { email: u.email, password: u.password } }); // another login: another family
    const r1 = await api('POST', '/tokens/refresh', { body: { refresh_token: u.refresh } });
    expect(r1.status).toBe(201);
    // Within the leeway: refused, nothing revoked (another tab of the same session raced this one).
    expect(expectProblem(await api('POST', '/tokens/refresh', { body: { refresh_token: u.refresh } }), 401).detail).toBe('refresh token already used');
    const r2 = await api('POST', '/tokens/refresh', { body: { refresh_token: r1.body.refresh_token } });
    expect(r2.status).toBe(201);
    // Later: a copy of the old token in other hands. The family ends, the newest token with it.
    await env.DB.prepare('UPDATE refresh_tokens SET used_at = used_at - ?').bind(REFRESH_REUSE_LEEWAY_MS + 1000).run();
    expect(expectProblem(await api('POST', '/tokens/refresh', { body: { refresh_token: u.refresh } }), 401).detail).toContain('every token of this session was revoked');
    expectProblem(await api('POST', '/tokens/refresh', { body: { refresh_token: r2.body.refresh_token } }), 401);
    // The other login is another session: it goes on.
    expect((await api('POST', '/tokens/refresh', { body: { refresh_token: second.body.refresh_token } })).status).toBe(201);
    // A token never issued is just invalid.
    expect(expectProblem(await api('POST', '/tokens/refresh', { body: { refresh_token: 'efr_nothing' } }), 401).detail).toBe('refresh token invalid or expired');
  });

  it('a refresh token from before families (no family in its row) ends its session on reuse too', async () => {
    const u = await newUser();
    await env.DB.prepare('UPDATE refresh_tokens SET family = NULL WHERE user_id = (SELECT id FROM users WHERE email = ?)').bind(u.email).run();
    const r1 = await api('POST', '/tokens/refresh', { body: { refresh_token: u.refresh } });
    expect(r1.status).toBe(201);
    await env.DB.prepare('UPDATE refresh_tokens SET used_at = used_at - ? WHERE used_at IS NOT NULL').bind(REFRESH_REUSE_LEEWAY_MS + 1000).run();
    expectProblem(await api('POST', '/tokens/refresh', { body: { refresh_token: u.refresh } }), 401);
    // The newer token went with it.
    expectProblem(await api('POST', '/tokens/refresh', { body: { refresh_token: r1.body.refresh_token } }), 401);
  });

  it('logging out ends the session: every token of its family, used ones included', async () => {
    const u = await newUser();
    const r1 = await api('POST', '/tokens/refresh', { body: { refresh_token: u.refresh } });
    expect((await api('POST', '/tokens/revoke', { body: { refresh_token: r1.body.refresh_token } })).status).toBe(204);
    const left = await env.DB.prepare('SELECT COUNT(*) AS n FROM refresh_tokens WHERE user_id = (SELECT id FROM users WHERE email = ?)').bind(u.email).first<number>('n');
    expect(left).toBe(0);
  });

  it('changes the password and ends other sessions', async () => {
    const u = await newUser();
    // The session is fine, the old password is not: 403 without a challenge, so no client refreshes on it.
    const wrongRes = await api('PATCH', '/users/me/password', { token: u.token, body: { old_password: 'nope nope', new_password: 'a new password' } });
    expect(expectProblem(wrongRes, 403).code).toBe('wrong_password');
    expect(wrongRes.headers.get('www-authenticate')).toBeNull();
    expect((await api('PATCH', '/users/me/password', { token: u.token, body: { old_password: u.password, new_password: 'a new password' } })).status).toBe(204);
    expectProblem(await api('POST', '/tokens', { body: { email: u.email, password: u.password } }), 401);
    expect((await api('POST', '/tokens', { body: { email: u.email, password: 'a new password' } })).status).toBe(201);
    expectProblem(await api('POST', '/tokens/refresh', { body: { refresh_token: u.refresh } }), 401);
  });

  it('refuses missing, malformed, forged and expired tokens', async () => {
    expectProblem(await api('GET', '/users/me'), 401);
    expectProblem(await api('GET', '/users/me', { headers: { authorization: 'Basic abc' } }), 401);
    expectProblem(await api('GET', '/users/me', { token: 'not.a.jwt' }), 401);
    const u = await newUser();
    const [h, p] = u.token.split('.');
    expectProblem(await api('GET', '/users/me', { token: `${h}.${p}.forgedsignature` }), 401);
    const { signToken } = await import('../../workers/auth/tokens');
    const expired = await signToken(env, { typ: 'user', sub: u.id }, -10);
    expect(expectProblem(await api('GET', '/users/me', { token: expired }), 401).detail).toContain('expired');
  });
});

describe('meta', () => {
  it('serves health, version and the OpenAPI document', async () => {
    expect((await api('GET', '/health')).body).toEqual({ status: 'ok', d1: 'ok' });
    expect((await api('GET', '/version')).body).toMatchObject({ name: 'edgeflux' });
    const doc = await api('GET', '/openapi.json');
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/users', '/tokens', '/orgs', '/orgs/{org}/members']));
    expectProblem(await api('GET', '/no/such/route'), 404);
  });
});
