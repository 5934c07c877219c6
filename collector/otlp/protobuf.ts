import { createRequire } from 'node:module';
import path from 'node:path';
import protobuf from 'protobufjs';

/**
 * The OTLP protobuf types, loaded once from the official opentelemetry-proto definitions.
 *
 * The `.proto` files come unmodified from opentelemetry-proto (v1.4.0, Apache-2.0) as shipped in
 * the npm package `@elastic/mockotlpserver` (`opentelemetry/proto/**`); no npm package from the
 * OpenTelemetry project itself ships the `.proto` sources any more (the JS SDK now compiles them
 * into code). `google.rpc.Status`, the error body the OTLP/HTTP specification prescribes, is not
 * part of opentelemetry-proto, so it is declared here from its three published fields.
 */

const require = createRequire(import.meta.url);
const PROTO_ROOT = path.dirname(require.resolve('@elastic/mockotlpserver/package.json'));

function loadRoot(): protobuf.Root {
  const root = new protobuf.Root();
  // Imports inside the .proto files are rooted at the package directory ("opentelemetry/proto/...").
  root.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTO_ROOT, target));
  root.loadSync(
    [
      'opentelemetry/proto/collector/trace/v1/trace_service.proto',
      'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
    ],
    { keepCase: false },
  );
  const any = new protobuf.Type('Any').add(new protobuf.Field('typeUrl', 1, 'string'));
  any.add(new protobuf.Field('value', 2, 'bytes'));
  const status = new protobuf.Type('Status')
    .add(new protobuf.Field('code', 1, 'int32'))
    .add(new protobuf.Field('message', 2, 'string'))
    .add(new protobuf.Field('details', 3, 'Any', 'repeated'));
  root.define('google.rpc').add(any).add(status);
  root.resolveAll();
  return root;
}

/** The loaded definitions, for reflection (the wire decoder takes its field numbers from here). */
export const root = loadRoot();

export const ExportTraceServiceRequest = root.lookupType(
  'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest',
);
export const ExportTraceServiceResponse = root.lookupType(
  'opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse',
);
export const ExportMetricsServiceRequest = root.lookupType(
  'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest',
);
export const ExportMetricsServiceResponse = root.lookupType(
  'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse',
);
export const RpcStatus = root.lookupType('google.rpc.Status');

/** Options for `Type.toObject` that keep every 64-bit integer exact (decimal strings) and bytes raw. */
export const TO_OBJECT_OPTIONS: protobuf.IConversionOptions = {
  longs: String,
  enums: Number,
  arrays: false,
  defaults: false,
  oneofs: false,
};
