// Finding nodes for the canvas widgets in a LiteGraph graph with subgraphs. Pure functions on
// the graph objects (getNodeById, links, inputs, subgraph), no DOM, no frontend imports.
//
// Inside a subgraph a node's execution id (what the server's "executed" event names) is the
// path of ids from the root graph: "12:5" is node 5 inside the subgraph of node 12.

const SUBGRAPH_INPUT = "-10"; // the id links from a subgraph's inputs carry as their origin

function nodeIn(graph, id) {
  if (!graph?.getNodeById) return null;
  const node = graph.getNodeById(id);
  if (node) return node;
  const n = Number(id);
  return Number.isInteger(n) && String(n) === String(id) ? graph.getNodeById(n) ?? null : null;
}

// [outermost subgraph node, ..., the node] for an execution id ("7", 7 or "12:5"), else null.
export function nodePath(rootGraph, executionId) {
  const parts = String(executionId ?? "").split(":").filter((p) => p.length > 0);
  if (!parts.length) return null;
  const path = [];
  let graph = rootGraph;
  for (const [i, part] of parts.entries()) {
    const node = nodeIn(graph, part);
    if (!node) return null;
    path.push(node);
    if (i < parts.length - 1) {
      graph = node.subgraph;
      if (!graph) return null;
    }
  }
  return path;
}

export function nodeByExecutionId(rootGraph, executionId) {
  return nodePath(rootGraph, executionId)?.at(-1) ?? null;
}

function linkIn(graph, id) {
  if (id == null || !graph?.links) return null;
  return (typeof graph.links.get === "function" ? graph.links.get(id) : graph.links[id]) ?? null;
}

// Every node with a canvas widget (isSource(node)) that feeds `path`'s last node through its
// input named `inputName`, nearest first: up the chain of that input (a FOVEA node's own `fovea`
// input merges the one before it), following pass-through nodes (their first input), out of a
// subgraph through its inputs and into a subgraph node through its outputs. `path` as from
// nodePath.
export function sourceNodes(path, isSource, inputName = "fovea") {
  const found = [];
  if (!path?.length) return found;
  const stack = path.slice(0, -1); // the subgraph nodes around the current graph
  let node = path.at(-1);
  let graph = node.graph;
  let link = linkIn(graph, node.inputs?.find((i) => i.name === inputName)?.link);
  for (let guard = 0; link && guard < 256; guard++) {
    if (String(link.origin_id) === SUBGRAPH_INPUT) { // out of the subgraph, into its node's input
      const outer = stack.pop();
      if (!outer) break;
      graph = outer.graph;
      link = linkIn(graph, outer.inputs?.[link.origin_slot]?.link);
      continue;
    }
    const origin = nodeIn(graph, link.origin_id);
    if (!origin) break;
    if (origin.subgraph) { // into the subgraph, to what feeds this output
      const ids = origin.subgraph.outputs?.[link.origin_slot]?.linkIds ?? [];
      stack.push(origin);
      graph = origin.subgraph;
      link = linkIn(graph, ids[0]);
      continue;
    }
    if (isSource(origin) && !found.includes(origin)) found.push(origin);
    const next = origin.inputs?.find((i) => i.name === inputName) ?? (isSource(origin) ? null : origin.inputs?.[0]);
    link = linkIn(graph, next?.link); // its merged fovea, or what a reroute passes on
  }
  return found;
}

// The nearest of them (the canvas that shows what a Foveated Decode decoded), else null.
export function sourceNode(path, isSource, inputName = "fovea") {
  return sourceNodes(path, isSource, inputName)[0] ?? null;
}
