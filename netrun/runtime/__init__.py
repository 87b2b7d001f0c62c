"""The runtime: the network loop, routers, agents, state and the steps that make it durable."""
