/**
 * A simulated MCP server for the demo: a real MCP server (TypeScript SDK, streamable HTTP) with three
 * weather tools, instrumented with the OpenTelemetry Node SDK exporting OTLP/protobuf to Pylee's
 * collector. One tool can be made slower and flakier, and can drop some of its calls' connections
 * (the gateway records those sessions as crashed), which is the regression the demo's canary shows.
 * Its clients reach it through Pylee's gateway, whose rows carry the calls; the collector keeps this
 * server's tool spans uncounted (so nothing is counted twice), and its CPU and memory metrics are what
 * only OTLP tells.
 *
 * Configured by environment (it runs as a child process, one per version):
 *   DEMO_PORT, DEMO_VERSION, DEMO_ENVIRONMENT, DEMO_OTLP_URL, DEMO_INGEST_KEY,
 *   DEMO_SLOW_TOOL (name), DEMO_SLOW_MS (extra latency), DEMO_ERROR_RATE (0..1 for that tool),
 *   DEMO_CRASH_RATE (0..1 of that tool's calls whose connection is dropped unanswered).
 */
import http from 'node:http';
import { SpanKind, SpanStatusCode, metrics, trace } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-proto';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

const env = process.env;
const port = Number(env.DEMO_PORT ?? 0);
const version = env.DEMO_VERSION ?? '1.0.0';
const slowTool = env.DEMO_SLOW_TOOL ?? '';
const slowMs = Number(env.DEMO_SLOW_MS ?? 0);
const errorRate = Number(env.DEMO_ERROR_RATE ?? 0);
const crashRate = Number(env.DEMO_CRASH_RATE ?? 0);
const headers = { authorization: `Bearer ${env.DEMO_INGEST_KEY ?? ''}` };
const otlp = env.DEMO_OTLP_URL ?? 'http://127.0.0.1:4318';

const sdk = new NodeSDK({
  resource: resourceFromAttributes({
    'service.name': 'weather-mcp',
    'service.version': version,
    'deployment.environment.name': env.DEMO_ENVIRONMENT ?? 'production',
  }),
  spanProcessors: [
    new BatchSpanProcessor(new OTLPTraceExporter({ url: `${otlp}/v1/traces`, headers }), {
      scheduledDelayMillis: 1000,
    }),
  ],
  metricReaders: [
    new PeriodicExportingMetricReader({
      exporter: new OTLPMetricExporter({ url: `${otlp}/v1/metrics`, headers }),
      exportIntervalMillis: 5000,
    }),
  ],
  instrumentations: [],
});
sdk.start();

const tracer = trace.getTracer('demo-weather-mcp', version);
const meter = metrics.getMeter('demo-weather-mcp', version);
let lastCpu = process.cpuUsage();
let lastAt = performance.now();
meter.createObservableGauge('process.cpu.utilization', { unit: '1' }).addCallback((result) => {
  const cpu = process.cpuUsage(lastCpu);
  const now = performance.now();
  result.observe((cpu.user + cpu.system) / 1000 / Math.max(1, now - lastAt));
  lastCpu = process.cpuUsage();
  lastAt = now;
});
meter
  .createObservableUpDownCounter('process.memory.usage', { unit: 'By' })
  .addCallback((result) => result.observe(process.memoryUsage().rss));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const jitter = (base: number) => base * (0.6 + Math.random() * 0.8);

/** Runs a tool inside a SERVER span named and attributed per the MCP semantic conventions. */
function instrumented(tool: string, baseMs: number, answer: (args: Record<string, unknown>) => string) {
  return async (args: Record<string, unknown>) =>
    tracer.startActiveSpan(
      `tools/call ${tool}`,
      { kind: SpanKind.SERVER, attributes: { 'mcp.method.name': 'tools/call', 'gen_ai.tool.name': tool } },
      async (span) => {
        try {
          await sleep(jitter(baseMs) + (tool === slowTool ? slowMs : 0));
          if (tool === slowTool && Math.random() < errorRate) {
            span.setAttribute('error.type', 'tool_error');
            span.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream weather service timed out' });
            return {
              isError: true,
              content: [{ type: 'text' as const, text: 'upstream weather service timed out' }],
            };
          }
          return { content: [{ type: 'text' as const, text: answer(args) }] };
        } finally {
          span.end();
        }
      },
    );
}

function mcpServer(): McpServer {
  const server = new McpServer({ name: 'weather-mcp', version });
  server.registerTool(
    'get_forecast',
    {
      description: 'Forecast for a city',
      inputSchema: { city: z.string(), days: z.number().int().optional() },
    },
    instrumented('get_forecast', 40, (args) => `Sunny in ${String(args.city)}`),
  );
  server.registerTool(
    'get_alerts',
    { description: 'Weather alerts for a region', inputSchema: { region: z.string() } },
    instrumented('get_alerts', 25, (args) => `No alerts for ${String(args.region)}`),
  );
  server.registerTool(
    'search_cities',
    { description: 'Find cities by name', inputSchema: { query: z.string() } },
    instrumented('search_cities', 15, (args) => `Cities matching ${String(args.query)}: …`),
  );
  return server;
}

/** Whether this request is a call of the flaky tool that drops its connection. */
function crashes(body: unknown): boolean {
  if (crashRate <= 0 || typeof body !== 'object' || body === null) return false;
  const call = body as { method?: unknown; params?: { name?: unknown } };
  return call.method === 'tools/call' && call.params?.name === slowTool && Math.random() < crashRate;
}

// Stateless streamable HTTP: a fresh server and transport per request, as the SDK's examples do. A
// stateless server has nothing to send on its own, so it offers no GET stream (405, as the spec allows).
const httpServer = http.createServer((req, res) => {
  if (req.url !== '/mcp') {
    res.writeHead(404).end();
    return;
  }
  if (req.method === 'GET') {
    res.writeHead(405, { allow: 'POST, DELETE' }).end();
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => {
    let body: unknown;
    try {
      body = chunks.length ? (JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown) : undefined;
    } catch {
      res.writeHead(400).end('the body is not JSON');
      return;
    }
    if (crashes(body)) {
      // The process handling the call dies under it: no answer, the connection just goes.
      req.socket.destroy();
      return;
    }
    void (async () => {
      const server = mcpServer();
      const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
      res.on('close', () => {
        void transport.close();
        void server.close();
      });
      await server.connect(transport);
      await transport.handleRequest(req, res, body);
    })().catch((error: unknown) => {
      if (!res.headersSent) res.writeHead(500).end(String(error));
    });
  });
});

httpServer.listen(port, '127.0.0.1', () => {
  const address = httpServer.address();
  const bound = typeof address === 'object' && address ? address.port : port;
  process.send?.({ ready: true, url: `http://127.0.0.1:${bound}/mcp` });
});

const stop = () => {
  httpServer.close();
  void sdk.shutdown().finally(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
