/**
 * What the inputs of server versions and template versions share: the server.json fields they
 * carry, the size limit of their documents, the key that makes a number unique, and the status a
 * new one may start in.
 */
import { BadRequestError } from '../errors.ts';
import { assertTransition, initialStatus, type Status } from './lifecycle.ts';
import type { VersionConfig } from './server-json.ts';

/** Release notes and migration guides are documents, not novels: 256 KiB each. */
export const MAX_NOTES_BYTES = 256 * 1024;

export const CONFIG_KEYS = [
  'title',
  'websiteUrl',
  'repository',
  'remotes',
  'packages',
  'icons',
  'meta',
] as const;

/** The server.json fields an input gives. */
export function configPart(input: Partial<VersionConfig>): Partial<VersionConfig> {
  return Object.fromEntries(CONFIG_KEYS.filter((k) => input[k] !== undefined).map((k) => [k, input[k]]));
}

/** The version without build metadata: 1.2.0+a and 1.2.0+b are one number by semver precedence. */
export const versionKey = (version: string) => version.split('+')[0] as string;

export function checkDocument(name: string, text: string | undefined): void {
  if (text !== undefined && Buffer.byteLength(text) > MAX_NOTES_BYTES) {
    throw new BadRequestError(
      `${name} is ${Math.ceil(Buffer.byteLength(text) / 1024)} KiB; the limit is ${MAX_NOTES_BYTES / 1024} KiB (link to longer documents instead)`,
      'notes-too-large',
    );
  }
}

/**
 * The status a new version (or template version, `noun`) starts in: the one asked for, else its
 * default; never deprecated or retired, and a pre-release never stable.
 */
export function firstStatus(
  version: string,
  prerelease: boolean,
  requested: Status | undefined,
  noun: string,
): Status {
  const status = requested ?? initialStatus(prerelease);
  if (status === 'deprecated' || status === 'retired') {
    throw new BadRequestError(
      `a new ${noun} starts as development, release-candidate or stable, not ${status}`,
      'invalid-status',
    );
  }
  if (prerelease && status === 'stable') assertTransition(version, 'development', 'stable', true);
  return status;
}
