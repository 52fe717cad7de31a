import { createHash, timingSafeEqual } from 'node:crypto';
import { createParamDecorator, Inject, Injectable, type CanActivate, type ExecutionContext } from '@nestjs/common';
import type { Request } from 'express';
import { AppError, type Config } from '@lib/shared';
import { CONFIG } from '../tokens.js';

/** The tenant of the embedded default, when no API keys are configured (loopback only). */
export const ANONYMOUS_TENANT = 'default';

export function isLoopbackHost(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Resolves `Authorization: Bearer <key>` to a tenant by comparing SHA-256 digests in constant time. With no keys
 * configured every request is the anonymous tenant, which the app allows only while bound to loopback.
 */
@Injectable()
export class TenantGuard implements CanActivate {
  constructor(@Inject(CONFIG) private readonly config: Config) {}

  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<Request & { tenant?: string }>();
    req.tenant = resolveTenant(this.config, req.headers.authorization);
    return true;
  }
}

export function resolveTenant(config: Pick<Config, 'apiKeys'>, authorization: string | undefined): string {
  if (config.apiKeys.length === 0) return ANONYMOUS_TENANT;
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(authorization ?? '');
  if (!m) throw new AppError('UNAUTHORIZED', 'send an API key as "Authorization: Bearer <key>"');
  const digest = createHash('sha256').update(m[1]!).digest();
  let tenant: string | undefined;
  for (const k of config.apiKeys) {
    // Check every key, so the time taken does not tell which tenant's key was close.
    if (timingSafeEqual(digest, Buffer.from(k.sha256, 'hex')) && tenant === undefined) tenant = k.tenant;
  }
  if (tenant === undefined) throw new AppError('UNAUTHORIZED', 'the API key is not valid');
  return tenant;
}

/**
 * Admin routes need ADMIN_API_KEY, as `Bearer <key>` or, for a browser, Basic auth with the key as the password.
 * With no admin key configured they are closed.
 */
export function assertAdmin(config: Pick<Config, 'adminApiKey'>, authorization: string | undefined): void {
  if (!config.adminApiKey) throw new AppError('FORBIDDEN', 'admin routes are disabled (ADMIN_API_KEY is not set)');
  const bearer = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
  const basic = /^Basic ([A-Za-z0-9+/=]+)$/.exec(authorization ?? '')?.[1];
  const presented = bearer ?? (basic ? Buffer.from(basic, 'base64').toString('utf8').split(':').slice(1).join(':') : undefined);
  if (presented === undefined) throw new AppError('UNAUTHORIZED', 'this route needs the admin key');
  const a = createHash('sha256').update(presented).digest();
  const b = createHash('sha256').update(config.adminApiKey).digest();
  if (!timingSafeEqual(a, b)) throw new AppError('FORBIDDEN', 'this route needs the admin key');
}

/** The tenant the guard resolved for this request. */
export const TenantId = createParamDecorator((_: unknown, ctx: ExecutionContext): string => {
  const tenant = ctx.switchToHttp().getRequest<{ tenant?: string }>().tenant;
  if (!tenant) throw new AppError('INTERNAL', 'tenant not resolved: the route lacks TenantGuard (this is a bug)');
  return tenant;
});
