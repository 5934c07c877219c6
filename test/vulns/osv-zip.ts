/** OSV exports built from the fixture records, as osv.dev's per-ecosystem all.zip files are laid out. */
import fs from 'node:fs';
import path from 'node:path';
import { zipSync } from 'fflate';

export const OSV_FIXTURES = path.join(import.meta.dirname, '../fixtures/osv');

/** `all.zip` of one fixture directory (npm, PyPI, NuGet, NuGet-2022): one `<id>.json` per record. */
export function allZip(dir: string, extra: Record<string, string> = {}): Uint8Array {
  const files: Record<string, Uint8Array> = {};
  for (const name of fs.readdirSync(path.join(OSV_FIXTURES, dir)).filter((f) => f.endsWith('.json'))) {
    files[name] = fs.readFileSync(path.join(OSV_FIXTURES, dir, name));
  }
  for (const [name, text] of Object.entries(extra)) files[name] = new TextEncoder().encode(text);
  return zipSync(files);
}

/** One upload holding each ecosystem's all.zip, as `pylee advisories import <dir>` sends a directory. */
export function exportsZip(dirs: string[]): Uint8Array {
  return zipSync(Object.fromEntries(dirs.map((d) => [`${d}/all.zip`, allZip(d)])));
}

interface FixtureRecord {
  withdrawn?: string;
  affected?: { package?: { ecosystem?: string } }[];
}

/** What importing fixture directories stores, counted from the records themselves (not the code). */
export function fixtureCounts(dirs: string[]) {
  const records = dirs.flatMap((dir) =>
    fs
      .readdirSync(path.join(OSV_FIXTURES, dir))
      .filter((f) => f.endsWith('.json'))
      .map((f) => JSON.parse(fs.readFileSync(path.join(OSV_FIXTURES, dir, f), 'utf8')) as FixtureRecord),
  );
  const live = records.filter((r) => !r.withdrawn);
  const inEcosystem = (eco: string) =>
    live.filter((r) => r.affected?.some((a) => a.package?.ecosystem === eco)).length;
  return {
    records: records.length,
    withdrawn: records.length - live.length,
    stored: live.length,
    perEcosystem: { npm: inEcosystem('npm'), PyPI: inEcosystem('PyPI'), NuGet: inEcosystem('NuGet') },
  };
}
