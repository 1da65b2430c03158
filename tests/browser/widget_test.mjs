// Browser tier: a real ComfyUI server with this pack, Debian's Chromium, playwright-core.
// Adds the Fovea and Gaze Path nodes, clicks/drags on their canvases, checks the widget
// values and what queueing sends to the server, in the classic canvas and in the Vue node
// renderer. Prints one JSON object; screenshots go to OUT_DIR.
import { chromium } from "playwright-core";
import { readdirSync, readFileSync } from "node:fs";

const URL = process.env.COMFY_URL;
const OUT = process.env.OUT_DIR;
const result = { steps: [] };
const log = (step, data = {}) => result.steps.push({ step, ...data });

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1600, height: 1000 } });
  await page.addInitScript(pageHelpers);
  page.on("pageerror", (e) => log("pageerror", { message: String(e) }));
  const prompts = [];
  page.on("request", (r) => {
    if (r.method() === "POST" && r.url().endsWith("/prompt")) prompts.push(r.postDataJSON());
  });
  await page.goto(URL, { waitUntil: "domcontentloaded" });
  await page.waitForFunction(() => window.app?.graph && window.LiteGraph && window.app.extensionManager, null,
    { timeout: 120000 });
  await page.waitForTimeout(1500);
  await page.keyboard.press("Escape");

  for (const vue of [false, true]) {
    const mode = vue ? "vue" : "classic";
    await page.evaluate(async (vueOn) => {
      await window.app.extensionManager.setting.set("Comfy.VueNodes.Enabled", vueOn);
      // remove nodes one by one: graph.clear() restarts node ids, and reused ids confuse the
      // Vue renderer's per-node components
      for (const n of [...window.app.graph.nodes]) window.app.graph.remove(n);
    }, vue);
    await page.waitForTimeout(800);

    // Fovea -> MaskPreview (an output node, so the prompt is valid and runs)
    const ids = await page.evaluate(() => {
      const { LiteGraph, app } = window;
      const f = LiteGraph.createNode("Fovea");
      f.pos = [80, 80];
      app.graph.add(f);
      const m = LiteGraph.createNode("MaskPreview");
      m.pos = [700, 80];
      app.graph.add(m);
      f.connect(1, m, 0);
      app.canvas.ds.offset = [0, 0];
      app.canvas.ds.scale = 1;
      app.graph.setDirtyCanvas(true, true);
      return { fovea: f.id, preview: m.id };
    });
    const canvas = page.locator("canvas[data-fovea-canvas]").first();
    await canvas.waitFor({ state: "visible", timeout: 30000 });
    const box = await canvas.boundingBox();
    const values = () => page.evaluate((id) => {
      const n = window.app.graph.getNodeById(id);
      return Object.fromEntries(n.widgets.filter((w) => w.name !== "fovea_canvas").map((w) => [w.name, w.value]));
    }, ids.fovea);
    const before = await values();

    // click sets the center; drag sets the radius
    const px = box.x + box.width * 0.35;
    const py = box.y + box.height * 0.4;
    await page.mouse.move(px, py);
    await page.mouse.down();
    await page.mouse.move(px + box.width * 0.12, py, { steps: 5 });
    await page.mouse.up();
    const afterDrag = await values();
    // shift-click adds a fovea, right-click removes it again
    await page.keyboard.down("Shift");
    await page.mouse.click(box.x + box.width * 0.8, box.y + box.height * 0.75);
    await page.keyboard.up("Shift");
    const afterShift = await values();
    const readout = await page.locator(".foveated-readout").first().textContent();
    await page.screenshot({ path: `${OUT}/fovea_widget_${mode}.png` });
    await page.mouse.click(box.x + box.width * 0.8, box.y + box.height * 0.75, { button: "right" });
    const afterRight = await values();

    prompts.length = 0;
    await page.evaluate(() => window.app.queuePrompt(0, 1));
    await page.waitForTimeout(1500);
    const sent = prompts[0]?.prompt?.[String(ids.fovea)]?.inputs ?? null;
    log(`fovea_${mode}`, { before, afterDrag, afterShift, afterRight, readout, sent,
      canvasBox: box, promptId: prompts.length ? "sent" : "none" });

    // Gaze Path: scrub to a frame, click adds a keyframe there
    const pathId = await page.evaluate(() => {
      const { LiteGraph, app } = window;
      for (const n of [...app.graph.nodes]) app.graph.remove(n);
      const p = LiteGraph.createNode("GazePath");
      p.pos = [80, 80];
      app.graph.add(p);
      app.graph.setDirtyCanvas(true, true);
      return p.id;
    });
    await page.waitForFunction(() => document.querySelector("input[data-fovea-scrubber]"), null, { timeout: 30000 })
      .catch(async (e) => {
        await page.screenshot({ path: `${OUT}/failure_path_${mode}.png` });
        const dom = await page.evaluate(() => ({
          canvases: document.querySelectorAll("canvas[data-fovea-canvas]").length,
          widgets: document.querySelectorAll(".foveated-widget").length,
          nodes: window.app.graph.nodes.map((n) => [n.type, n.widgets?.map((w) => w.name)]),
        }));
        throw new Error(`no scrubber in ${mode} mode: ${JSON.stringify(dom)}; ${e}`);
      });
    const pcanvas = page.locator("canvas[data-fovea-canvas]").last();
    await pcanvas.waitFor({ state: "visible", timeout: 30000 });
    const scrub = page.locator("input[data-fovea-scrubber]").first();
    await scrub.evaluate((el) => { el.value = "40"; el.dispatchEvent(new Event("input", { bubbles: true })); });
    const pbox = await pcanvas.boundingBox();
    await page.mouse.click(pbox.x + pbox.width * 0.5, pbox.y + pbox.height * 0.2);
    const keyframes = await page.evaluate((id) => window.app.graph.getNodeById(id).widgets
      .find((w) => w.name === "keyframes").value, pathId);
    await page.screenshot({ path: `${OUT}/gaze_path_widget_${mode}.png` });
    log(`path_${mode}`, { keyframes });

    log(`video_${mode}`, await videoCanvas(page, mode));
    log(`keep_fovea_${mode}`, await keepFoveaFields(page));
    log(`keep_path_${mode}`, await keepPathFields(page));
    log(`frames_${mode}`, await page.evaluate(() => window.__fv.coalescing()));
    log(`removed_${mode}`, await page.evaluate(() => window.__fv.lifecycle()));
  }

  log("subgraph", await subgraphImages(page));

  // a saved workflow restores the state
  const restored = await page.evaluate(async () => {
    const { LiteGraph, app } = window;
    await app.extensionManager.setting.set("Comfy.VueNodes.Enabled", false);
    for (const n of [...app.graph.nodes]) app.graph.remove(n);
    const f = LiteGraph.createNode("Fovea");
    app.graph.add(f);
    f.widgets.find((w) => w.name === "x").value = 0.125;
    f.widgets.find((w) => w.name === "extra_gazes").value = "[[0.75,0.25,0.1]]";
    const saved = JSON.parse(JSON.stringify(app.graph.serialize()));
    await app.loadGraphData(saved);
    const n = app.graph.nodes.find((nd) => nd.type === "Fovea");
    const api = await app.graphToPrompt();
    return {
      x: n.widgets.find((w) => w.name === "x").value,
      extra: n.widgets.find((w) => w.name === "extra_gazes").value,
      apiInputs: api.output[String(n.id)].inputs,
      hasCanvas: !!document.querySelector("canvas[data-fovea-canvas]"),
    };
  });
  log("restore", restored);

  // every example workflow loads with all its node types known to the server
  const dir = process.env.WORKFLOWS_DIR;
  for (const file of readdirSync(dir).filter((f) => f.endsWith(".json"))) {
    const data = JSON.parse(readFileSync(`${dir}/${file}`, "utf8"));
    const loaded = await page.evaluate(async (wf) => {
      await window.app.loadGraphData(wf);
      const nodes = window.app.graph.nodes;
      return {
        count: nodes.length,
        unknown: nodes.filter((n) => n.type !== "MarkdownNote" && !window.LiteGraph.registered_node_types[n.type])
          .map((n) => n.type),
        canvases: nodes.filter((n) => n.__foveaView).length,
        api: (await window.app.graphToPrompt()).output, // what Queue would send
      };
    }, data);
    await page.waitForTimeout(500);
    await page.screenshot({ path: `${OUT}/workflow_${file.replace(/\.json$/, "")}.png` });
    log(`workflow ${file}`, { ...loaded, expected: data.nodes.length });
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(result));

// ------------------------------------------------------------------ helpers
// Runs in the page before the frontend loads (test instrumentation only): counts the
// ResizeObservers watching a fovea canvas that are still live, and offers helpers to the checks.
function pageHelpers() {
  window.__liveFoveaObservers = 0;
  const Native = window.ResizeObserver;
  window.ResizeObserver = class extends Native {
    observe(target, options) {
      if (target?.dataset?.foveaCanvas && !this.__fovea) {
        this.__fovea = true;
        window.__liveFoveaObservers++;
      }
      return super.observe(target, options);
    }
    disconnect() {
      if (this.__fovea) {
        this.__fovea = false;
        window.__liveFoveaObservers--;
      }
      return super.disconnect();
    }
  };
  const frames = (n = 2) => new Promise((done) => {
    const step = () => (n-- <= 0 ? done() : requestAnimationFrame(step));
    step();
  });
  const fresh = async (type, widgets = {}) => {
    const { LiteGraph, app } = window;
    for (const n of [...app.graph.nodes]) app.graph.remove(n);
    const node = LiteGraph.createNode(type);
    node.pos = [80, 80];
    app.graph.add(node);
    for (const [name, v] of Object.entries(widgets)) set(node, name, v);
    app.graph.setDirtyCanvas(true, true);
    await frames(3);
    return node;
  };
  const set = (node, name, v) => { // as if typed in
    const w = node.widgets.find((x) => x.name === name);
    w.value = v;
    w.callback?.(v);
  };
  const values = (node) => Object.fromEntries(node.widgets.filter((w) => w.name !== "fovea_canvas")
    .map((w) => [w.name, w.value]));
  window.__fv = {
    frames, fresh, set, values,
    // page coordinates of a normalized image point on the node's canvas
    point(node, nx, ny) {
      const v = node.__foveaView;
      const L = v.layout();
      const r = v.canvas.getBoundingClientRect();
      const sx = r.width / v.canvas.clientWidth;
      const sy = r.height / v.canvas.clientHeight;
      return { x: r.left + (L.x0 + nx * L.rw) * sx, y: r.top + (L.y0 + ny * L.rh) * sy };
    },
    // 60 pointer moves within one frame: the values follow each, the canvas is drawn once
    async coalescing() {
      const node = await fresh("Fovea");
      const v = node.__foveaView;
      await frames(2);
      const at = (nx, ny) => window.__fv.point(node, nx, ny);
      const send = (type, p) => v.canvas.dispatchEvent(new PointerEvent(type, {
        clientX: p.x, clientY: p.y, button: 0, buttons: type === "pointerup" ? 0 : 1, pointerId: 7, bubbles: true,
      }));
      const drawsBefore = v.draws;
      send("pointerdown", at(0.5, 0.5));
      const radii = new Set();
      for (let i = 1; i <= 60; i++) {
        send("pointermove", at(0.5 + 0.004 * i, 0.5));
        radii.add(values(node).radius);
      }
      const drawsSync = v.draws;
      await frames(2);
      const drawsAfter = v.draws;
      send("pointerup", at(0.74, 0.5));
      return { drawsBefore, drawsSync, drawsAfter, radii: radii.size };
    },
    // a removed node releases its observer and listeners and draws no more
    async lifecycle() {
      const { LiteGraph, app } = window;
      for (const n of [...app.graph.nodes]) app.graph.remove(n);
      await frames(2);
      const base = window.__liveFoveaObservers;
      const f = LiteGraph.createNode("Fovea");
      app.graph.add(f);
      const p = LiteGraph.createNode("GazePath");
      p.pos = [600, 80];
      app.graph.add(p);
      await frames(3);
      const added = window.__liveFoveaObservers;
      const views = [f.__foveaView, p.__foveaView];
      const r = views[0].canvas.getBoundingClientRect();
      app.graph.remove(f);
      app.graph.remove(p);
      const removed = window.__liveFoveaObservers;
      const before = { fovea: values(f), path: values(p), draws: views.map((v) => v.draws) };
      // the canvases' listeners are gone: pointer events and wheel change nothing
      for (const [i, v] of views.entries()) {
        const at = { clientX: r.left + 20 + 7 * i, clientY: r.top + 20, button: 0, pointerId: 9, bubbles: true };
        v.canvas.dispatchEvent(new PointerEvent("pointerdown", at));
        v.canvas.dispatchEvent(new PointerEvent("pointermove", at));
        v.canvas.dispatchEvent(new WheelEvent("wheel", { deltaY: 100, bubbles: true, cancelable: true }));
      }
      set(f, "width", 512); // and a changed value draws nothing
      set(p, "num_frames", 9);
      await frames(3);
      return {
        base, added, removed, disposed: views.map((v) => v.disposed),
        unchanged: JSON.stringify({ ...values(f), width: 1024 }) === JSON.stringify(before.fovea)
          && JSON.stringify({ ...values(p), num_frames: before.path.num_frames }) === JSON.stringify(before.path),
        drawsBefore: before.draws, drawsAfter: views.map((v) => v.draws),
      };
    },
  };
}

// Gazes with aspect and rotation, in list and object form: canvas edits keep every field they
// did not touch. Returns the widget values after each step.
async function keepFoveaFields(page) {
  const extra = [[0.2, 0.25, 0.1, 0.4321, 12.5], { x: 0.8, y: 0.75, radius: 0.12, aspect: 2.5, rotation: -45, label: "keep" },
    [0.75, 0.2, 0.08, 0.3]];
  await page.evaluate(async (text) => {
    window.__fvNode = await window.__fv.fresh("Fovea", { aspect: 0.6, rotation: 20, extra_gazes: text });
  }, JSON.stringify(extra, null, 1));
  const at = (nx, ny) => page.evaluate(([x, y]) => window.__fv.point(window.__fvNode, x, y), [nx, ny]);
  const values = () => page.evaluate(() => window.__fv.values(window.__fvNode));
  const out = { extra, start: await values() };
  let p = await at(0.45, 0.55); // nearest: the primary gaze
  await page.mouse.click(p.x, p.y);
  out.afterPrimary = await values();
  p = await at(0.22, 0.27); // nearest: extra gaze 0; drag sets its radius, the wheel scales it
  await page.mouse.move(p.x, p.y);
  await page.mouse.down();
  const q = await at(0.34, 0.27);
  await page.mouse.move(q.x, q.y, { steps: 4 });
  await page.mouse.up();
  out.afterDrag = await values();
  await page.mouse.wheel(0, 100);
  await page.waitForTimeout(100);
  out.afterWheel = await values();
  p = await at(0.5, 0.9);
  await page.keyboard.down("Shift");
  await page.mouse.click(p.x, p.y);
  await page.keyboard.up("Shift");
  out.afterShift = await values();
  p = await at(0.44, 0.56); // remove the primary gaze: extra gaze 0 takes its place
  await page.mouse.click(p.x, p.y, { button: "right" });
  out.afterRemove = await values();
  return out;
}

// A Gaze Path node at 832x480 (Wan 2.1 480p), 81 frames: the drawn image keeps the video's aspect
// ratio; a click at a known point of it (found here from the canvas box and 832x480 alone, not
// with the widget's code) adds a keyframe at the scrubbed frame; then the shading is read back
// from the canvas pixels, token by token, with the readout line and the scrubber label.
// tests/test_browser_widget.py compares them with fov_core.
async function videoCanvas(page, mode) {
  const VIDEO = { width: 832, height: 480, frames: 81, frame: 38, click: [0.62, 0.22],
    keyframes: '[{"frame": 0, "x": 0.5, "y": 0.5, "radius": 0.15}, {"frame": 36, "x": 0.15, "y": 0.3, "radius": 0.1}, '
      + '{"frame": 42, "x": 0.85, "y": 0.7, "radius": 0.12}, {"frame": 80, "x": 0.5, "y": 0.5, "radius": 0.2}]' };
  await page.evaluate(async (v) => {
    const node = await window.__fv.fresh("GazePath", { keyframes: v.keyframes, num_frames: v.frames, width: v.width,
      height: v.height, periphery: "rings: 1/2 then 1/4", ring_scale: 1.5 });
    node.setSize([1000, 900]); // big tokens for reading the shading back
    window.app.graph.setDirtyCanvas(true, true);
    await window.__fv.frames(3);
    const scrub = document.querySelector("input[data-fovea-scrubber]");
    scrub.value = String(v.frame);
    scrub.dispatchEvent(new Event("input", { bubbles: true }));
    window.__fvNode = node;
    await window.__fv.frames(2);
  }, VIDEO);
  const canvas = page.locator("canvas[data-fovea-canvas]").last();
  const box = await canvas.boundingBox();
  // the image rectangle, letterboxed into the canvas box at the video's aspect ratio
  const s = Math.min(box.width / VIDEO.width, box.height / VIDEO.height);
  const rect = { x0: (box.width - VIDEO.width * s) / 2, y0: (box.height - VIDEO.height * s) / 2,
    rw: VIDEO.width * s, rh: VIDEO.height * s };
  const [nx, ny] = VIDEO.click;
  await page.mouse.click(box.x + rect.x0 + nx * rect.rw, box.y + rect.y0 + ny * rect.rh);
  await page.evaluate(() => window.__fv.frames(3));
  await page.screenshot({ path: `${OUT}/gaze_path_video_${mode}.png` });
  return page.evaluate(async () => {
    const node = window.__fvNode;
    const v = node.__foveaView;
    const c = v.canvas;
    const px = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const at = (x, y) => { const i = 4 * (y * c.width + x); return [px[i], px[i + 1], px[i + 2]]; };
    const near = (p, q, tol = 4) => p.every((ch, i) => Math.abs(ch - q[i]) <= tol);
    // the drawn image: where the canvas is not its background (#202124), on the middle row and column
    const BG = [32, 33, 36];
    const span = (n, get) => {
      const inside = [...Array(n).keys()].filter((i) => !near(get(i), BG, 2));
      return [inside[0], inside.at(-1) + 1];
    };
    const [left, right] = span(c.width, (x) => at(x, Math.floor(c.height / 2)));
    const [top, bottom] = span(c.height, (y) => at(Math.floor(c.width / 2), y));
    // level of every token: the colour most of its inner pixels have, among the grid's grey
    // (#6a6e78, full resolution) and that grey under the 1/2 and 1/4 shades of fovea_canvas_view.js
    const base = [106, 110, 120];
    const under = (a) => base.map((ch, i) => Math.round(ch * (1 - a) + [8, 10, 18][i] * a));
    const classes = [base, under(0.45), under(0.68)];
    const H = 30;
    const W = 52;
    const cw = (right - left) / W;
    const ch = (bottom - top) / H;
    const levels = [];
    for (let ty = 0; ty < H; ty++) {
      for (let tx = 0; tx < W; tx++) {
        const votes = [0, 0, 0];
        for (let y = Math.ceil(top + (ty + 0.25) * ch); y < top + (ty + 0.75) * ch; y++) {
          for (let x = Math.ceil(left + (tx + 0.25) * cw); x < left + (tx + 0.75) * cw; x++) {
            const k = classes.findIndex((q) => near(at(x, y), q));
            if (k >= 0) votes[k]++;
          }
        }
        const best = Math.max(...votes);
        levels.push(best > 0 ? votes.indexOf(best) : -1);
      }
    }
    return {
      keyframes: window.__fv.values(node).keyframes,
      label: document.querySelector("input[data-fovea-scrubber]").nextElementSibling.textContent,
      readout: v.root.querySelector(".foveated-readout").textContent,
      canvasPx: [c.width, c.height], drawn: { left, right, top, bottom }, cellPx: [cw, ch], levels,
    };
  }).then((r) => ({ ...r, video: VIDEO, canvasBox: box, rect }));
}

// Keyframes in object form with an extra key and in list form survive adding and dragging.
async function keepPathFields(page) {
  const text = '[{"frame": 0, "x": 0.2, "y": 0.5, "radius": 0.25, "note": "start"}, [80, 0.8, 0.5, 0.3]]';
  await page.evaluate(async (kf) => {
    window.__fvNode = await window.__fv.fresh("GazePath", { keyframes: kf });
    const scrub = document.querySelector("input[data-fovea-scrubber]");
    scrub.value = "20";
    scrub.dispatchEvent(new Event("input", { bubbles: true }));
  }, text);
  const at = (nx, ny) => page.evaluate(([x, y]) => window.__fv.point(window.__fvNode, x, y), [nx, ny]);
  let p = await at(0.5, 0.85); // adds a keyframe at frame 20
  await page.mouse.click(p.x, p.y);
  await page.mouse.wheel(0, -100); // its radius
  await page.waitForTimeout(100);
  p = await at(0.8, 0.5); // drag keyframe 80
  await page.mouse.move(p.x, p.y);
  await page.mouse.down();
  const q = await at(0.7, 0.35);
  await page.mouse.move(q.x, q.y, { steps: 4 });
  await page.mouse.up();
  return { start: text, keyframes: await page.evaluate(() => window.__fv.values(window.__fvNode).keyframes) };
}

// Images reach canvas nodes inside subgraphs (execution ids like "12:5"): a Fovea's own
// preview_image from a real run, and the image of a Foveated Decode fed across a subgraph
// boundary in both directions (sent as the server's "executed" event).
async function subgraphImages(page) {
  return page.evaluate(async () => {
    const { LiteGraph, app } = window;
    const { api } = await import("/scripts/api.js");
    const seen = [];
    api.addEventListener("executed", ({ detail }) => seen.push(String(detail.display_node || detail.node)));
    await app.extensionManager.setting.set("Comfy.VueNodes.Enabled", false);
    for (const n of [...app.graph.nodes]) app.graph.remove(n);
    const add = (type, pos) => {
      const n = LiteGraph.createNode(type);
      n.pos = pos;
      app.graph.add(n);
      return n;
    };
    const slot = (node, name) => node.inputs.findIndex((i) => i.name === name);
    // 1. LoadImage -> [Fovea -> MaskPreview] as a subgraph, run for real
    const load = add("LoadImage", [0, 0]);
    const f = add("Fovea", [300, 0]);
    const m = add("MaskPreview", [800, 0]);
    load.connect(0, f, slot(f, "preview_image"));
    f.connect(1, m, 0);
    const s1 = app.graph.convertToSubgraph(new Set([f, m])).node;
    const inner = s1.subgraph.nodes.find((n) => n.type === "Fovea");
    await app.queuePrompt(0, 1);
    const until = Date.now() + 90000;
    while (!inner.__foveaView.image && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
    const own = { id: `${s1.id}:${inner.id}`, src: inner.__foveaView.image?.src ?? null };
    // 2. Fovea -> [Foveated Decode] and [Fovea] -> Foveated Decode
    for (const n of [...app.graph.nodes]) app.graph.remove(n);
    const outerFovea = add("Fovea", [0, 0]);
    const d1 = add("FoveatedDecode", [500, 0]);
    outerFovea.connect(0, d1, slot(d1, "fovea"));
    const s2 = app.graph.convertToSubgraph(new Set([d1])).node;
    const innerDecode = s2.subgraph.nodes.find((n) => n.type === "FoveatedDecode");
    const f3 = add("Fovea", [0, 500]);
    const d3 = add("FoveatedDecode", [500, 500]);
    f3.connect(0, d3, slot(d3, "fovea"));
    const s3 = app.graph.convertToSubgraph(new Set([f3])).node;
    const innerFovea = s3.subgraph.nodes.find((n) => n.type === "Fovea");
    const image = (filename) => ({ images: [{ filename, type: "input", subfolder: "" }] });
    const decodeIntoId = `${s2.id}:${innerDecode.id}`;
    api.dispatchCustomEvent("executed", { node: decodeIntoId, display_node: decodeIntoId, output: image("a.png") });
    api.dispatchCustomEvent("executed", { node: String(d3.id), display_node: String(d3.id), output: image("b.png") });
    return {
      own, seen, decodeIntoId,
      outerFovea: outerFovea.__foveaView.image?.src ?? null,
      innerFovea: innerFovea.__foveaView.image?.src ?? null,
    };
  });
}
