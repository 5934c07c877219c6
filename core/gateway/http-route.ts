/**
 * The desired weights of one server in one environment as a Kubernetes Gateway API `HTTPRoute`
 * (`gateway.networking.k8s.io/v1`), for teams whose traffic runs through their own Gateway: one rule
 * whose `backendRefs` name a Service per version, weighted as Pylee's rollout says. Pure: Pylee only
 * renders it; applying it (`kubectl apply -f`, Argo CD, Flux) is the team's.
 *
 * Gateway API weights are proportional (`weight / Σ weights` of the rule), whole numbers from 0 to
 * 1,000,000, not percentages; Pylee's percents (summing to 100) are passed through as they are. A
 * Gateway splits per request unless its implementation persists sessions, so an MCP session can
 * cross versions there; the Pylee gateway is the one that keeps a session on its version.
 */
import { createHash } from 'node:crypto';
import semver from 'semver';
import type { VersionWeight } from '../deploy/releases.ts';
import { BadRequestError, ConflictError } from '../errors.ts';

export type { VersionWeight };

export const HTTP_ROUTE_API_VERSION = 'gateway.networking.k8s.io/v1';
/** The Gateway a route attaches to when the caller names none. */
export const DEFAULT_PARENT_REF = 'pylee-gateway';
/** The Service port of every backend when the caller names none. */
export const DEFAULT_BACKEND_PORT = 80;
/** The largest weight the Gateway API accepts on a backendRef. */
export const MAX_BACKEND_WEIGHT = 1_000_000;
/** Where Pylee's weights come from: the stable release and the active rollout (desiredState). */
export const WEIGHTS_SOURCE = 'pylee-desired-state';
export const ANNOTATION_PREFIX = 'pylee.dev/';

// RFC 1123 label and subdomain; a Gateway API Hostname (lower case, optionally one leading `*.`).
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const HOSTNAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const MAX_LABEL = 63;
const MAX_SUBDOMAIN = 253;
const HASH_CHARS = 8;

export interface HttpRouteInput {
  /** The org's slug (an annotation). */
  org: string;
  server: string;
  environment: string;
  /** The desired weights (percent per version); versions with weight 0 get no backendRef. */
  weights: readonly VersionWeight[];
  /** `metadata.namespace`; left out when not given (kubectl's current namespace applies). */
  namespace?: string | undefined;
  /**
   * The Gateway to attach to: `name` or `namespace/name` (a Gateway in another namespace).
   * @defaultValue {@link DEFAULT_PARENT_REF}
   */
  parentRef?: string | undefined;
  /**
   * The port of every version's Service.
   * @defaultValue {@link DEFAULT_BACKEND_PORT}
   */
  port?: number | undefined;
  /** `spec.hostnames`, when given: the one host name the route matches. */
  hostname?: string | undefined;
  /** The active rollout the weights come from, if any (an annotation). */
  deployment?: string | null | undefined;
}

export interface HttpRouteBackendRef {
  name: string;
  port: number;
  weight: number;
}

export interface HttpRoute {
  apiVersion: typeof HTTP_ROUTE_API_VERSION;
  kind: 'HTTPRoute';
  metadata: {
    name: string;
    namespace?: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  spec: {
    parentRefs: { name: string; namespace?: string }[];
    hostnames?: string[];
    rules: { backendRefs: HttpRouteBackendRef[] }[];
  };
}

/**
 * `text` as an RFC 1123 label (≤ 63 characters), the same for the same text: lower-cased, every
 * character but `a-z`, `0-9` and `-` (in versions: `.` and `+`) made a dash, dashes trimmed from the
 * ends. A longer one keeps its first 54 characters and ends with `-` and 8 hex digits of SHA-256 of
 * `identity`, so two long names differing only at the end stay apart. `letterFirst` (a Service name
 * is an RFC 1035 label): one starting with a digit gets the prefix `svc-`.
 */
export function dnsLabel(text: string, identity: string = text, letterFirst = false): string {
  let label = text
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .replace(/^-+|-+$/g, '');
  if (letterFirst && !/^[a-z]/.test(label)) label = `svc-${label}`.replace(/-+$/, '');
  if (label === '') label = 'x';
  if (label.length <= MAX_LABEL) return label;
  const hash = createHash('sha256').update(identity).digest('hex').slice(0, HASH_CHARS);
  return `${label.slice(0, MAX_LABEL - HASH_CHARS - 1).replace(/-+$/, '')}-${hash}`;
}

/** The HTTPRoute's name: `<server>-<environment>` as an RFC 1123 label. */
export const routeName = (server: string, environment: string): string =>
  dnsLabel(`${server}-${environment}`, `${server}/${environment}`);

/**
 * The Service a version's backendRef names: `<server>-v<version>`, dots and `+` as dashes, lower
 * case, e.g. `weather-v1-4-0-rc-1` for weather 1.4.0-rc.1. Versions differing only in case or in `.`
 * against `-`/`+` get the same name; {@link renderHttpRoute} refuses to put both in one route.
 */
export const serviceName = (server: string, version: string): string =>
  dnsLabel(`${server}-v${version}`, `${server}@${version}`, true);

function parentRefOf(text: string | undefined): { name: string; namespace?: string } {
  const value = text ?? DEFAULT_PARENT_REF;
  const parts = value.split('/');
  const [namespace, name] = parts.length === 2 ? parts : [undefined, parts[0]];
  const valid =
    parts.length <= 2 &&
    name !== undefined &&
    name.length <= MAX_SUBDOMAIN &&
    SUBDOMAIN.test(name) &&
    (namespace === undefined || (namespace.length <= MAX_LABEL && LABEL.test(namespace)));
  if (!valid) {
    throw new BadRequestError(
      `parentRef ${value} is not a Gateway: give its name (lower-case letters, digits, dashes and dots, e.g. prod-gateway) or namespace/name (e.g. infra/prod-gateway)`,
      'invalid-parent-ref',
    );
  }
  return namespace === undefined ? { name } : { namespace, name };
}

function checkOptions(input: HttpRouteInput): void {
  const { namespace, port, hostname } = input;
  if (namespace !== undefined && !(namespace.length <= MAX_LABEL && LABEL.test(namespace))) {
    throw new BadRequestError(
      `namespace ${namespace} is not a Kubernetes namespace: at most 63 lower-case letters, digits and dashes, starting and ending with a letter or digit`,
      'invalid-namespace',
    );
  }
  if (port !== undefined && !(Number.isInteger(port) && port >= 1 && port <= 65_535)) {
    throw new BadRequestError(`port ${port} is not a port: a whole number from 1 to 65535`, 'invalid-port');
  }
  if (hostname !== undefined && !(hostname.length <= MAX_SUBDOMAIN && HOSTNAME.test(hostname))) {
    throw new BadRequestError(
      `hostname ${hostname} is not a host name the Gateway API takes: lower-case DNS labels joined by dots, optionally starting with *. (e.g. mcp.example.com), no IP address or port`,
      'invalid-hostname',
    );
  }
}

const byVersion = (a: VersionWeight, b: VersionWeight): number => {
  const [x, y] = [semver.valid(a.version), semver.valid(b.version)];
  if (x && y && semver.compare(x, y) !== 0) return semver.compare(x, y);
  return a.version < b.version ? -1 : a.version > b.version ? 1 : 0;
};

/**
 * Renders the weights of `server` in `environment` as an HTTPRoute: `metadata.name`
 * `<server>-<environment>` ({@link routeName}), label `app.kubernetes.io/managed-by: pylee`,
 * annotations naming the org, server, environment and where the weights come from; one parentRef;
 * one rule with a backendRef per version of positive weight ({@link serviceName}, `port`, the weight),
 * in semver order, whatever the order of `weights`. No positive weight: no backendRefs (a Gateway
 * answers such a rule with an error; the API refuses to render it). Throws `BadRequestError` for a
 * namespace, parentRef, port or hostname Kubernetes would refuse, and for a weight that is not a whole
 * number from 0 to 1,000,000; `ConflictError` when two versions would share a Service name.
 */
export function renderHttpRoute(input: HttpRouteInput): HttpRoute {
  checkOptions(input);
  const parentRef = parentRefOf(input.parentRef);
  const port = input.port ?? DEFAULT_BACKEND_PORT;
  for (const { version, weight } of input.weights) {
    if (!Number.isInteger(weight) || weight < 0 || weight > MAX_BACKEND_WEIGHT) {
      throw new BadRequestError(
        `weight ${weight} of ${version} is not a Gateway API weight: a whole number from 0 to ${MAX_BACKEND_WEIGHT}`,
        'invalid-weight',
      );
    }
  }
  const live = input.weights.filter((w) => w.weight > 0).sort(byVersion);
  const backendRefs = live.map((w) => ({
    name: serviceName(input.server, w.version),
    port,
    weight: w.weight,
  }));
  const names = new Map<string, string>();
  for (const [i, ref] of backendRefs.entries()) {
    const version = (live[i] as VersionWeight).version;
    const other = names.get(ref.name);
    if (other !== undefined) {
      throw new ConflictError(
        `versions ${other} and ${version} of ${input.server} would both be the Service ${ref.name}; a route cannot tell them apart, so let one of them finish (promote or roll back) first`,
        'backend-name-collision',
      );
    }
    names.set(ref.name, version);
  }
  const p = ANNOTATION_PREFIX;
  const annotations: Record<string, string> = {
    [`${p}org`]: input.org,
    [`${p}server`]: input.server,
    [`${p}environment`]: input.environment,
    [`${p}weights-source`]: WEIGHTS_SOURCE,
    // The versions as Pylee names them (Service names lose `.`, `+` and case).
    [`${p}weights`]: live.map((w) => `${w.version}=${w.weight}`).join(','),
  };
  if (input.deployment) annotations[`${p}deployment`] = input.deployment;
  return {
    apiVersion: HTTP_ROUTE_API_VERSION,
    kind: 'HTTPRoute',
    metadata: {
      name: routeName(input.server, input.environment),
      ...(input.namespace !== undefined ? { namespace: input.namespace } : {}),
      labels: { 'app.kubernetes.io/managed-by': 'pylee' },
      annotations,
    },
    spec: {
      parentRefs: [parentRef],
      ...(input.hostname !== undefined ? { hostnames: [input.hostname] } : {}),
      rules: [{ backendRefs }],
    },
  };
}
