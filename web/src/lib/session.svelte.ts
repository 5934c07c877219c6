import type { Permission, Session } from './api';

/** Who is signed in, for the whole app (set by the layout and the sign-in page). */
export const auth = $state<{ session: Session | null }>({ session: null });

export function can(permission: Permission): boolean {
  const perms = auth.session?.permissions ?? [];
  if (perms.includes('admin')) return true;
  // `connect` (MCP clients through the gateway) includes no read.
  if (permission === 'read') return perms.some((p) => p !== 'connect');
  return perms.includes(permission);
}
