// Redaction of secrets from log records: the last step before a record is written, applied to every
// record whatever its origin (our code, ftp-srv, errors' messages). Main thread. Invariant: no
// password, token, refresh token, secret, cookie or Authorization header value survives — by key
// name at any depth, and inside strings (PASS arguments, Bearer tokens, OAuth form/JSON fields).

export const CENSOR = '[Redacted]';

/** Keys whose values are secrets wherever they appear (case-insensitive, `_`/`-` ignored). */
const SECRET_KEY = /^(pass|passwd|password|pwd|secret|appsecret|clientsecret|token|accesstoken|refreshtoken|idtoken|authorization|proxyauthorization|cookie|setcookie|credentials?|codeverifier|apikey|privatekey|key)$/;

const STRING_RULES: [RegExp, string][] = [
  // An FTP PASS command line quoted in a message: "PASS hunter2".
  [/\bPASS(\s+)[^\r\n"]*/gi, `PASS$1${CENSOR}`],
  [/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, `$1 ${CENSOR}`],
  // OAuth2 form bodies and query strings.
  [/\b(access_token|refresh_token|id_token|client_secret|code_verifier|password|code)=[^&\s"]+/gi, `$1=${CENSOR}`],
  // JSON quoted inside a string (an upstream error body).
  [/("(?:access_token|refresh_token|id_token|client_secret|password|secret|token)"\s*:\s*")[^"]*/gi, `$1${CENSOR}`],
];

/**
 * A cheap test over a whole serialized record: false means no rule above could match anything in
 * it (no secret-like key, no PASS line, no Bearer/Basic, no OAuth field), so it can be written as
 * it is without being parsed. It errs on the side of true.
 */
const SUSPECT = /pass|pwd|secret|token|authori[sz]ation|cookie|credential|verifier|api[-_]?key|private|key"|bearer|basic|code=/i;

export function mayHoldSecret(line: string): boolean {
  return SUSPECT.test(line);
}

export function isSecretKey(key: string): boolean {
  return SECRET_KEY.test(key.replace(/[-_]/g, '').toLowerCase());
}

export function redactString(text: string): string {
  let out = text;
  for (const [pattern, replacement] of STRING_RULES) out = out.replace(pattern, replacement);
  return out;
}

/** A redacted copy of a parsed JSON value (records are small: one per session event or transfer). */
export function redact(value: unknown, depth = 0): unknown {
  if (typeof value === 'string') return redactString(value);
  if (value === null || typeof value !== 'object' || depth > 12) return value;
  if (Array.isArray(value)) return value.map((item) => redact(item, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) out[key] = isSecretKey(key) && inner !== null && inner !== '' ? CENSOR : redact(inner, depth + 1);
  return out;
}
