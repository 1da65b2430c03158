// Canvas widgets for the Fovea and Gaze Path nodes: the extension that attaches them and shows
// the images they are drawn on.
//
//   fovea_node_widget.js   the Fovea node's canvas (gaze points)
//   gaze_path_widget.js    the Gaze Path node's canvas (keyframes over video frames)
//   fovea_canvas_view.js   the canvas view both share (drawing, one redraw per frame, clean-up)
//   fovea_values.js        widget values <-> canvas state, keeping every field the nodes accept
//   fovea_geometry.js      level maps, token counts, FLOP model, path interpolation (= fov_core)
//   fovea_graph.js         nodes by execution id (subgraphs), the canvas nodes feeding a node
//
// The state lives in the nodes' ordinary widget values, so saved workflows and the API format
// carry it. Built only on the public extension API (app.registerExtension, node.addDOMWidget,
// api events).
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { MODEL_KEY, modelFrom } from "./fovea_geometry.js";
import { nodePath, sourceNode, sourceNodes } from "./fovea_graph.js";
import { attachFovea } from "./fovea_node_widget.js";
import { attachPath } from "./gaze_path_widget.js";

function imageUrl(img) {
  const params = new URLSearchParams({ filename: img.filename, type: img.type || "temp", subfolder: img.subfolder || "" });
  return api.apiURL(`/view?${params}`);
}

const hasView = (n) => n.__foveaView && !n.__foveaView.disposed;

// What a node's run tells the canvases. From an Apply Foveation: its model's token size and FLOP
// model, for every canvas node whose fovea it used. An image: on a canvas node, its own
// preview_image; from a Foveated Decode, the last image decoded with the fovea of the canvas node
// that feeds it (unless that node has a preview_image of its own). Node ids inside subgraphs are
// paths ("12:5").
function onExecuted({ detail }) {
  const output = detail?.output;
  const model = modelFrom(output?.[MODEL_KEY]?.[0]);
  const images = output?.images;
  if (!model && !images?.length) return;
  const path = nodePath(app.rootGraph ?? app.graph, detail.display_node || detail.node);
  const node = path?.at(-1);
  if (!node) return;
  if (model) {
    for (const src of sourceNodes(path, hasView)) src.__foveaView.setModel(model);
  }
  if (!images?.length) return;
  if (node.__foveaView) {
    node.__foveaView.setImage(imageUrl(images[0]));
    return;
  }
  if ((node.comfyClass ?? node.type) === "FoveatedDecode") {
    const src = sourceNode(path, hasView);
    if (src && !src.__foveaHasPreviewInput?.()) src.__foveaView.setImage(imageUrl(images[0]));
  }
}

app.registerExtension({
  name: "foveated.diffusion.canvas",
  nodeCreated(node) {
    const cls = node.comfyClass ?? node.constructor?.comfyClass ?? node.type;
    if (cls === "Fovea") attachFovea(node);
    else if (cls === "GazePath") attachPath(node);
  },
  setup() {
    // once for the page, not per node (nodes are looked up when an event arrives)
    api.addEventListener("executed", onExecuted);
  },
});
