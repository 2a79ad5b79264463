// Run in an SVG document (a genotype drawing): lists text that meets other text, covers a box,
// overflows its own box or leaves the drawing. An empty list: nothing overlaps.
const boxes = (nodes) => [...nodes].map((n) => {
  const b = n.getBBox();
  return {x0: b.x, y0: b.y, x1: b.x + b.width, y1: b.y + b.height, text: n.textContent, group: n.closest("g")};
});
const meet = (a, b) =>
  Math.min(a.x1, b.x1) - Math.max(a.x0, b.x0) > 0.5 && Math.min(a.y1, b.y1) - Math.max(a.y0, b.y0) > 0.5;
const inside = (a, b) => a.x0 >= b.x0 && a.x1 <= b.x1 && a.y0 >= b.y0 && a.y1 <= b.y1;
const svg = document.documentElement;
const view = {x0: 0, y0: 0, x1: svg.viewBox.baseVal.width, y1: svg.viewBox.baseVal.height};
const texts = boxes(svg.querySelectorAll("text"));
const rects = boxes(svg.querySelectorAll("rect"));
const problems = [];
texts.forEach((a, i) => {
  if (!inside(a, view)) problems.push(`outside the drawing: ${a.text}`);
  texts.slice(i + 1).forEach((b) => { if (meet(a, b)) problems.push(`"${a.text}" meets "${b.text}"`); });
  rects.forEach((r) => {
    if (r.group === a.group) {
      if (!inside(a, r)) problems.push(`"${a.text}" overflows its box`);
    } else if (meet(a, r)) {
      problems.push(`"${a.text}" covers a box`);
    }
  });
});
return problems;
