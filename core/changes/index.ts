// What changed between two versions: the seams other modules use (API, CLI, alert and canary messages).
export {
  versionChanges,
  DEFAULT_EVENTS_WINDOW_MS,
  type ChangesQuery,
  type VersionChanges,
} from './changes.ts';
export {
  CHANGE_KINDS,
  SEMVER_DISTANCES,
  versionDistance,
  type ChangeKind,
  type ChangeRow,
  type SemverDistance,
} from './diff.ts';
export {
  configurationEvents,
  eventRow,
  CONFIGURATION_ACTIONS,
  type ConfigurationEvent,
  type ConfigurationScope,
} from './events.ts';
export { scopeLabel } from './resolved.ts';
export { agoText, summarizeChanges } from './summary.ts';
export { changesForMessage, MESSAGE_EVENTS_MS, type MessageChanges } from './for-messages.ts';
