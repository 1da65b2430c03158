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
  }

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
