/**
 * OSV exports as osv-scanner's offline mode reads them: a zip of one JSON record per entry
 * (`<ecosystem>/all.zip`). Zips inside the zip are opened too, so one upload can carry several
 * ecosystems' exports (the CLI zips a directory that way).
 */
import { unzipSync } from 'fflate';
import { BadRequestError } from '../errors.ts';

export interface ArchiveEntry {
  name: string;
  data: Uint8Array;
}

const isZip = (data: Uint8Array) => data[0] === 0x50 && data[1] === 0x4b;

/** Every `.json` entry of the zip (and of zips inside it), in name order. */
export function readArchive(data: Uint8Array, name = 'the upload'): ArchiveEntry[] {
  if (!isZip(data)) {
    throw new BadRequestError(`${name} is not a zip archive (an OSV all.zip export)`, 'invalid-archive');
  }
  let files: Record<string, Uint8Array>;
  try {
    files = unzipSync(data);
  } catch (error) {
    throw new BadRequestError(
      `${name} is a corrupt zip archive: ${(error as Error).message}`,
      'invalid-archive',
    );
  }
  const entries: ArchiveEntry[] = [];
  for (const entry of Object.keys(files).sort()) {
    const bytes = files[entry] as Uint8Array;
    const path = name === 'the upload' ? entry : `${name}/${entry}`;
    if (entry.endsWith('/')) continue;
    if (entry.toLowerCase().endsWith('.zip')) entries.push(...readArchive(bytes, path));
    else if (entry.toLowerCase().endsWith('.json')) entries.push({ name: path, data: bytes });
  }
  return entries;
}
