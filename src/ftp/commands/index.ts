// The command table: every verb dropftp answers, aliases included. Main thread, built once per
// server. Invariant: an alias maps to the very spec of its verb (one handler, one permission).

import { DATA_SETUP_COMMANDS } from './data-setup.ts';
import { FILE_COMMANDS } from './files.ts';
import { LISTING_COMMANDS } from './listing.ts';
import { SESSION_COMMANDS } from './session.ts';
import { TRANSFER_COMMANDS } from './transfer.ts';
import type { CommandSpec } from './types.ts';

export function buildCommandTable(): Map<string, CommandSpec> {
  const table = new Map<string, CommandSpec>();
  for (const spec of [...SESSION_COMMANDS, ...DATA_SETUP_COMMANDS, ...FILE_COMMANDS, ...LISTING_COMMANDS, ...TRANSFER_COMMANDS]) {
    for (const name of [spec.name, ...(spec.aliases ?? [])]) {
      if (table.has(name)) throw new Error(`command ${name} registered twice`);
      table.set(name, spec);
    }
  }
  return table;
}
