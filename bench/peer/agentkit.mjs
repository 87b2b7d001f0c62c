// The AgentKit side of bench/peer.py: one agent, one tool that bumps a counter in state,
// a code router that runs the agent until the counter reaches N, then stops.
// bench/peer.py copies this file next to its cached node_modules (ESM resolves packages
// from the script's folder, not from NODE_PATH) and runs `node agentkit.mjs N BASE_URL`.
import { createAgent, createNetwork, createState, createTool, openai } from "@inngest/agent-kit";
import { z } from "zod";

const n = Number(process.argv[2]);
const baseUrl = process.argv[3];
if (!Number.isInteger(n) || n < 1 || !baseUrl) {
  console.error("usage: node agentkit.mjs N BASE_URL");
  process.exit(2);
}

const step = createTool({
  name: "step",
  description: "Take a step.",
  parameters: z.object({ note: z.string() }),
  handler: async ({ note }, { network }) => {
    network.state.data.count += 1;
    return { count: network.state.data.count, note };
  },
});

const worker = createAgent({
  name: "worker",
  description: "works",
  // The same per-call system prompt as the netrun network: the counter rendered into it.
  system: ({ network }) => `Step ${network?.state.data.count ?? 0} of ${n}.`,
  tools: [step],
});

const network = createNetwork({
  name: "overhead",
  agents: [worker],
  defaultModel: openai({ model: "fake", baseUrl, apiKey: "sk-bench" }),
  defaultState: createState({ count: 0 }),
  maxIter: n + 5, // the router stops the run; this only guards against a runaway loop
  router: ({ network }) => (network.state.data.count >= n ? undefined : worker),
});

const run = await network.run(String(n));
console.log(JSON.stringify({ count: run.state.data.count, results: run.state.results.length }));
