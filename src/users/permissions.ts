// What a user may do, and which FTP verbs each permission guards. Pure data and functions, main
// thread. Invariants: every verb that reads, lists or changes storage is named under exactly one
// permission (test/users/units.test.ts fails if the command table grows a verb nobody classified);
// aliases (XMKD, XRMD) and verbs that write like STOR (APPE, STOU) are refused through their
// canonical verb by the connection's blacklist check; the file system re-checks every operation per
// path (mounts may be read-only), so the verb list is a first gate, not the only one.

export const PERMISSIONS = ['list', 'read', 'write', 'delete', 'mkdir', 'rename'] as const;
export type Permission = (typeof PERMISSIONS)[number];
export type PermissionSet = ReadonlySet<Permission>;

export const ALL_PERMISSIONS: PermissionSet = new Set(PERMISSIONS);
export const READ_ONLY_PERMISSIONS: PermissionSet = new Set<Permission>(['list', 'read']);

/** Canonical verbs per permission (aliases resolve to these through the command table). */
export const PERMISSION_VERBS: Readonly<Record<Permission, readonly string[]>> = {
  list: ['LIST', 'NLST', 'MLSD', 'MLST', 'SIZE', 'MDTM'],
  read: ['RETR'],
  write: ['STOR', 'APPE', 'STOU', 'MFMT', 'MFCT', 'MFF', 'SITE'],
  delete: ['DELE', 'RMD'],
  mkdir: ['MKD'],
  rename: ['RNFR', 'RNTO'],
};

/** Verbs that touch no stored data (session, navigation, data-connection set-up). */
export const NEUTRAL_VERBS: readonly string[] = [
  'USER', 'PASS', 'QUIT', 'FEAT', 'OPTS', 'HELP', 'AUTH', 'PBSZ', 'PROT', 'NOOP', 'SYST', 'TYPE', 'MODE', 'STRU', 'ALLO',
  'REST', 'ABOR', 'PWD', 'CWD', 'CDUP', 'PASV', 'EPSV', 'PORT', 'EPRT',
  // STAT without an argument is the session status; with a path it lists, and the file system
  // checks `list` for that path.
  'STAT',
];

export function isPermission(value: unknown): value is Permission {
  return typeof value === 'string' && (PERMISSIONS as readonly string[]).includes(value);
}

/** Verbs to refuse at the command gate for a user holding `granted`. */
export function deniedVerbs(granted: PermissionSet): string[] {
  const denied: string[] = [];
  for (const permission of PERMISSIONS) if (!granted.has(permission)) denied.push(...PERMISSION_VERBS[permission]);
  return denied;
}

/** `granted` minus anything a read-only place forbids. */
export function restrictToReadOnly(granted: PermissionSet): PermissionSet {
  return new Set([...granted].filter((p) => READ_ONLY_PERMISSIONS.has(p)));
}
