// Account, check and OAuth routes: users/get_current_account, users/get_space_usage, check/user,
// auth/token/revoke, and /oauth2/token (= /1/oauth2/token) with the refresh_token and
// authorization_code (PKCE) grants (reference §3.9, §6). Runs in the local box child.
// Invariant: token parameters are read from the query string and the form body; client credentials
// from HTTP Basic or parameters.

import { readSmallBody } from '../args.ts';
import { sendJson } from '../context.ts';
import type { Route } from './common.ts';

const ALLOCATED_BYTES = 2 * 1024 ** 4; // 2 TiB, an ordinary Plus plan

const currentAccount: Route = {
  name: 'users/get_current_account',
  style: 'rpc',
  auth: 'user',
  voidArg: true,
  async handle(ctx) {
    const a = ctx.account!;
    const ns = String(a.ns);
    sendJson(ctx.res, {
      account_id: a.account_id,
      name: { given_name: a.name, surname: 'Local', familiar_name: a.name, display_name: `${a.name} Local`, abbreviated_name: a.name.slice(0, 1).toUpperCase() + 'L' },
      email: `${a.name}@localbox.invalid`,
      email_verified: true,
      disabled: false,
      country: 'US',
      locale: 'en',
      referral_link: 'https://db.tt/localbox',
      is_paired: false,
      account_type: { '.tag': 'pro' },
      root_info: { '.tag': 'user', root_namespace_id: ns, home_namespace_id: ns },
    });
  },
};

const spaceUsage: Route = {
  name: 'users/get_space_usage',
  style: 'rpc',
  auth: 'user',
  voidArg: true,
  async handle(ctx, box) {
    sendJson(ctx.res, { used: box.ns.spaceUsed(ctx.account!.ns), allocation: { '.tag': 'individual', allocated: ALLOCATED_BYTES } });
  },
};

const checkUser: Route = {
  name: 'check/user',
  style: 'rpc',
  auth: 'user',
  async handle(ctx) {
    const query = ctx.args.str('query', '');
    if (query.length > 500) ctx.args.uint('query'); // reuse the typed reader's 400
    sendJson(ctx.res, { result: query });
  },
};

const revoke: Route = {
  name: 'auth/token/revoke',
  style: 'rpc',
  auth: 'user',
  voidArg: true,
  async handle(ctx, box) {
    box.accounts.revoke(ctx.accessToken!);
    sendJson(ctx.res, null);
  },
};

function oauthError(res: import('node:http').ServerResponse, error: string, description: string): void {
  sendJson(res, { error, error_description: description }, 400);
}

function token(name: string): Route {
  return {
    name,
    style: 'token',
    auth: 'none',
    async handle(ctx, box) {
      const params = new URLSearchParams(ctx.url.search);
      const body = await readSmallBody(ctx.req, name);
      if (body.length) {
        const ct = String(ctx.req.headers['content-type'] ?? '');
        if (ct.startsWith('application/json')) {
          try {
            for (const [k, v] of Object.entries(JSON.parse(body.toString('utf8')) as Record<string, unknown>)) params.set(k, String(v));
          } catch {
            return oauthError(ctx.res, 'invalid_request', 'body is not valid JSON');
          }
        } else for (const [k, v] of new URLSearchParams(body.toString('utf8'))) params.set(k, v);
      }
      let clientId = params.get('client_id');
      let clientSecret = params.get('client_secret');
      const auth = ctx.req.headers.authorization;
      if (auth?.startsWith('Basic ')) {
        // "id:secret" (RFC 7617: the id holds no colon, the secret may), each form-URL-encoded (RFC 6749 §2.3.1).
        const pair = Buffer.from(auth.slice(6), 'base64').toString('utf8');
        const colon = pair.indexOf(':');
        try {
          clientId = decodeURIComponent(colon < 0 ? pair : pair.slice(0, colon));
          clientSecret = decodeURIComponent(colon < 0 ? '' : pair.slice(colon + 1));
        } catch {
          return oauthError(ctx.res, 'invalid_client', 'the Authorization header\'s client credentials are not valid URL encoding');
        }
      }
      const grant = params.get('grant_type');
      if (grant === 'refresh_token') {
        const refreshToken = params.get('refresh_token');
        if (!refreshToken) return oauthError(ctx.res, 'invalid_request', 'No refresh_token');
        const r = box.accounts.refresh(refreshToken, clientId, clientSecret);
        if (typeof r === 'string') return oauthError(ctx.res, 'invalid_grant', r);
        return sendJson(ctx.res, { access_token: r.access, token_type: 'bearer', expires_in: 14400 });
      }
      if (grant === 'authorization_code') {
        const code = params.get('code');
        if (!code) return oauthError(ctx.res, 'invalid_request', 'No code');
        const r = box.accounts.exchangeCode(code, params.get('code_verifier'), params.get('redirect_uri'), clientId, clientSecret);
        if (typeof r === 'string') return oauthError(ctx.res, 'invalid_grant', r);
        return sendJson(ctx.res, {
          access_token: r.access,
          expires_in: 14400,
          token_type: 'bearer',
          scope: 'account_info.read files.content.read files.content.write files.metadata.read files.metadata.write',
          refresh_token: r.refresh,
          account_id: r.account.account_id,
          uid: String(r.account.ns),
        });
      }
      return oauthError(ctx.res, 'unsupported_grant_type', `grant_type "${grant ?? ''}" is not supported`);
    },
  };
}

export const accountRoutes: Route[] = [currentAccount, spaceUsage, checkUser, revoke, token('oauth2/token'), token('1/oauth2/token')];
