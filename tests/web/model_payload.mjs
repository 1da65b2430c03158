// Node script (tests/test_comfy_widget_model.py): what the canvas widget makes of the model
// payloads real Apply Foveation runs sent. Reads FOVEA_CASES (JSON list of {payload, width,
// height, gazes, periphery, ring_scale}); prints one JSON list of {accepted, key, grid, tokens,
// full, idealSpeedup, label}.
import { readFileSync } from "node:fs";
import * as G from "../../web/fovea_geometry.js";
import { modelLabel } from "../../web/fovea_canvas_view.js";

const cases = JSON.parse(readFileSync(process.env.FOVEA_CASES, "utf8"));
const out = cases.map((c) => {
  const model = G.modelFrom(c.payload);
  if (!model) return { accepted: false, key: G.MODEL_KEY };
  const { H, W } = G.gridFor(c.width, c.height, model.token_px);
  const map = G.levelMap(c.gazes, G.policyFor(c.periphery, c.ring_scale), H, W);
  const r = G.readout(map, H, W, model.dims);
  return { accepted: true, key: G.MODEL_KEY, grid: [H, W], tokens: r.tokens, full: r.full,
    idealSpeedup: r.idealSpeedup ?? null, label: modelLabel(model) };
});
console.log(JSON.stringify(out));
