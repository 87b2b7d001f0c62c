// Checks chunks netrun streams against AgentKit's own definitions (npm @inngest/agent-kit):
// every chunk against the zod schema AgentMessageChunkSchema, and every chunk of an event
// AgentKit names against that event's TypeScript type, as a typed literal that
// `tsc --noEmit --strict` compiles (excess fields are errors, as in any object literal).
// AgentKit adds data.threadId and data.userId to every chunk of a run that has them, so
// those two are allowed on every type. Extra event names ("netrun.*") are checked against
// the schema only: AgentKit's clients ignore names they do not know.
//
// usage: node check_chunks.mjs CHUNKS.json WORKDIR   (exit 0: all valid; 1: a report on stderr)
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { AgentMessageChunkSchema } from "@inngest/agent-kit";

const TYPES = {
  "run.started": "RunStartedEvent",
  "run.completed": "RunCompletedEvent",
  "run.failed": "RunFailedEvent",
  "run.interrupted": "RunInterruptedEvent",
  "step.started": "StepStartedEvent",
  "step.completed": "StepCompletedEvent",
  "step.failed": "StepFailedEvent",
  "part.created": "PartCreatedEvent",
  "part.completed": "PartCompletedEvent",
  "part.failed": "PartFailedEvent",
  "text.delta": "TextDeltaEvent",
  "tool_call.arguments.delta": "ToolCallArgumentsDeltaEvent",
  "tool_call.output.delta": "ToolCallOutputDeltaEvent",
  "reasoning.delta": "ReasoningDeltaEvent",
  "data.delta": "DataDeltaEvent",
  "hitl.requested": "HitlRequestedEvent",
  "hitl.resolved": "HitlResolvedEvent",
  "usage.updated": "UsageUpdatedEvent",
  "metadata.updated": "MetadataUpdatedEvent",
  "stream.ended": "StreamEndedEvent",
  error: "GenericErrorEvent",
};

const [, , chunksPath, workDir] = process.argv;
const chunks = JSON.parse(readFileSync(chunksPath, "utf8"));
const problems = [];
const counts = {};
chunks.forEach((chunk, i) => {
  const parsed = AgentMessageChunkSchema.safeParse(chunk);
  if (!parsed.success) problems.push(`chunk ${i} (${chunk.event}): ${parsed.error.message}`);
  else if (JSON.stringify(Object.keys(parsed.data).sort()) !== JSON.stringify(Object.keys(chunk).sort()))
    problems.push(`chunk ${i} (${chunk.event}): fields outside the schema: ${Object.keys(chunk)}`);
  if (chunk.id !== `publish-${chunk.sequenceNumber}:${chunk.event}`) problems.push(`chunk ${i}: id ${chunk.id}`);
  if (!(chunk.event in TYPES) && !String(chunk.event).startsWith("netrun."))
    problems.push(`chunk ${i}: event ${chunk.event} is neither AgentKit's nor an extra netrun.* name`);
  counts[chunk.event] = (counts[chunk.event] ?? 0) + 1;
});

// The typed literals, compiled by tsc against the package's own .d.ts.
const require = createRequire(import.meta.url);
const typesPath = resolve(dirname(require.resolve("@inngest/agent-kit")), "index.d.ts");
const used = [...new Set(chunks.map((c) => TYPES[c.event]).filter(Boolean))];
const lines = [
  `import type { ${used.join(", ")} } from "@inngest/agent-kit";`,
  "type Ids = { threadId?: string; userId?: string };",
  'type Chunk<E extends { data: object }> = Omit<E, "data"> & { data: E["data"] & Ids };',
];
chunks.forEach((chunk, i) => {
  const type = TYPES[chunk.event];
  if (type) lines.push(`export const c${i}: Chunk<${type}> = ${JSON.stringify(chunk)};`);
});
mkdirSync(workDir, { recursive: true });
writeFileSync(join(workDir, "chunks.ts"), lines.join("\n") + "\n");
writeFileSync(
  join(workDir, "tsconfig.json"),
  JSON.stringify({
    compilerOptions: {
      strict: true,
      noEmit: true,
      target: "es2022",
      module: "esnext",
      moduleResolution: "bundler",
      skipLibCheck: true,
      types: [],
      paths: { "@inngest/agent-kit": [typesPath] },
    },
    files: ["chunks.ts"],
  }),
);
const tsc = join(dirname(require.resolve("typescript/package.json")), "bin", "tsc");
try {
  execFileSync(process.execPath, [tsc, "-p", join(workDir, "tsconfig.json")], { encoding: "utf8", stdio: "pipe" });
} catch (err) {
  problems.push(`tsc --noEmit --strict:\n${err.stdout}${err.stderr}`);
}
if (problems.length) {
  console.error(problems.join("\n"));
  process.exit(1);
}
console.log(JSON.stringify({ chunks: chunks.length, typed: lines.length - 3, events: counts }));
