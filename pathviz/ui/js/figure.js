// A canvas figure's parts (title, subtitle, canvas, hover label) and the canvas sized to its
// box, with a text writer that records where each text went (the heatmap's).

import { P, current } from './state.js';

export function figParts(box, middle, canvasClass, onMove, redraw, after = '') {
  // a figure's parts, built once per box: title, subtitle, ``middle`` (a legend, say), one
  // canvas, ``after`` (the position marker, say) and the hover label; ``redraw`` when the box
  // resizes
  let parts = box.__pv;
  if (parts && parts.cv.isConnected) return parts;
  box.innerHTML = '<div class="pv-hf-title"></div><div class="pv-hf-sub"></div>' + middle
    + `<canvas class="${canvasClass}"></canvas>` + after + '<div class="pv-hf-tip"></div>';
  const q = (sel) => box.querySelector(sel);
  parts = box.__pv = {
    title: q('.pv-hf-title'), sub: q('.pv-hf-sub'), legend: q('.pv-legend'),
    cv: q('canvas.' + canvasClass), marker: q('.pv-marker'), tip: q('.pv-hf-tip'),
  };
  parts.cv.addEventListener('mousemove', (e) => onMove(box, e));
  parts.cv.addEventListener('mouseleave', () => { parts.tip.style.display = 'none'; });
  new ResizeObserver(() => {  // a wider page or a new viewport: the same snapshot, redrawn
    const c = current();
    if (c && P.drawn) redraw(c);
  }).observe(box);
  return parts;
}

export function surface(box, cv, top, font) {
  // a figure's canvas below its title lines, sized to the box in device pixels, and a text
  // writer that records each text's box (tests check that none leaves the canvas)
  const W = box.clientWidth, H = Math.max(box.clientHeight - top, 80);
  const dpr = window.devicePixelRatio || 1;
  cv.style.top = top + 'px';
  cv.style.width = W + 'px';
  cv.style.height = H + 'px';
  cv.width = Math.round(W * dpr);
  cv.height = Math.round(H * dpr);
  const ctx = cv.getContext('2d');
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, W, H);
  const family = getComputedStyle(box).fontFamily || 'sans-serif';
  ctx.font = `${font}px ${family}`;
  const texts = (box.__pvTexts = []);
  const put = (text, x, y, align, base, turn) => {
    ctx.fillStyle = '#444';
    ctx.textAlign = align;
    ctx.textBaseline = base;
    const w = ctx.measureText(text).width, h = parseFloat(ctx.font);
    const a = align === 'left' ? 0 : align === 'right' ? -w : -w / 2;
    const b = base === 'top' ? 0 : base === 'bottom' ? -h : -h / 2;
    if (turn) {  // a quarter turn about (x, y): the box is h wide and w high
      ctx.save(); ctx.translate(x, y); ctx.rotate(turn); ctx.fillText(text, 0, 0); ctx.restore();
      texts.push({ text, left: x - h / 2, right: x + h / 2, top: y - w / 2, bottom: y + w / 2 });
    } else {
      ctx.fillText(text, x, y);
      texts.push({ text, left: x + a, right: x + a + w, top: y + b, bottom: y + b + h });
    }
  };
  return { ctx, W, H, put, family };
}
