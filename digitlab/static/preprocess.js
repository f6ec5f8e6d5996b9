// digitlab's preprocessing specification (digitlab/preprocess.py) for the browser: a picture of one digit -> the
// MNIST-style 28x28 input, light ink on black, values 0..255. Each step follows the Python one; the resize is PIL's
// fixed-point Lanczos resampler (Pillow's Resample.c), so both give the same pixels. tests/test_web.py checks it.
"use strict";

const DIGITLAB_SPEC = {inkFraction: 0.2, minInk: 32, box: 20, side: 28};

// Python's round(): halves go to the even neighbour.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// Step 1: ITU-R 601 luma as PIL computes it (integer weights of 2^16); alpha composited onto white (exact for opaque
// pictures such as the drawing canvas, within a gray level of PIL's compositing for translucent ones).
function digitlabGray(rgba, width, height) {
  const gray = new Float32Array(width * height);
  for (let i = 0; i < width * height; i++) {
    const a = rgba[4 * i + 3];
    const over = c => Math.floor((c * a + 255 * (255 - a) + 127) / 255);  // PIL's alpha_composite onto white
    const [r, g, b] = a === 255 ? [rgba[4 * i], rgba[4 * i + 1], rgba[4 * i + 2]]
      : [over(rgba[4 * i]), over(rgba[4 * i + 1]), over(rgba[4 * i + 2])];
    gray[i] = (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
  }
  return gray;
}

function median(values) {
  const sorted = Float64Array.from(values).sort();
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

// Steps 2-3: invert dark-on-light, subtract the paper's shade (a plane through the four edges' medians), clip.
function digitlabInkOnBlack(gray, width, height) {
  const row = y => Array.from(gray.subarray(y * width, (y + 1) * width));
  const column = x => Array.from({length: height}, (_, y) => gray[y * width + x]);
  const border = [...row(0), ...row(height - 1), ...column(0), ...column(width - 1)];
  const invert = border.reduce((s, v) => s + v, 0) / border.length > 127;
  const g = Float64Array.from(gray, v => (invert ? 255 - v : v));
  const side = values => median(invert ? values.map(v => 255 - v) : values);
  const top = side(row(0)), bottom = side(row(height - 1)), left = side(column(0)), right = side(column(width - 1));
  const mean = (top + bottom + left + right) / 4;
  const out = new Float64Array(width * height);
  for (let y = 0; y < height; y++) {
    const down = top + (bottom - top) * (y / Math.max(height - 1, 1));
    for (let x = 0; x < width; x++) {
      const across = left + (right - left) * (x / Math.max(width - 1, 1));
      out[y * width + x] = Math.min(255, Math.max(0, g[y * width + x] - ((down + across) - mean)));
    }
  }
  return out;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the Lanczos filter (support 3).
function lanczosCoefficients(inSize, outSize) {
  const sinc = x => (x === 0 ? 1 : Math.sin(Math.PI * x) / (Math.PI * x));
  const lanczos = x => (x >= -3 && x < 3 ? sinc(x) * sinc(x / 3) : 0);
  const scale = inSize / outSize, filterScale = Math.max(scale, 1), support = 3 * filterScale;
  const rows = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const weights = [];
    let total = 0;
    for (let x = 0; x < xmax; x++) {
      const w = lanczos((x + xmin - center + 0.5) * (1 / filterScale));
      weights.push(w);
      total += w;
    }
    const fixed = weights.map(w => {
      const k = total !== 0 ? w / total : w;
      return Math.trunc(k < 0 ? -0.5 + k * (1 << 22) : 0.5 + k * (1 << 22));  // 22 precision bits
    });
    rows.push({xmin, fixed});
  }
  return rows;
}

function clip8(sum) {
  return sum >= (1 << 30) ? 255 : sum <= 0 ? 0 : Math.floor(sum / (1 << 22));
}

// One resampling pass along x (stride 1) or y (stride width) of a uint8 image, as Pillow does it.
function resamplePass(pixels, width, height, outWidth, outHeight, horizontal) {
  const coefficients = horizontal ? lanczosCoefficients(width, outWidth) : lanczosCoefficients(height, outHeight);
  const out = new Uint8Array(outWidth * outHeight);
  for (let y = 0; y < outHeight; y++) {
    for (let x = 0; x < outWidth; x++) {
      const {xmin, fixed} = coefficients[horizontal ? x : y];
      let sum = 1 << 21;  // half of one unit: rounds to nearest
      for (let k = 0; k < fixed.length; k++) {
        sum += fixed[k] * (horizontal ? pixels[y * width + xmin + k] : pixels[(xmin + k) * width + x]);
      }
      out[y * outWidth + x] = clip8(sum);
    }
  }
  return out;
}

function lanczosResize(pixels, width, height, outWidth, outHeight) {
  let image = pixels, w = width;
  if (outWidth !== width) {
    image = resamplePass(image, width, height, outWidth, height, true);
    w = outWidth;
  }
  if (outHeight !== height) image = resamplePass(image, w, height, outWidth, outHeight, false);
  return image;
}

// Steps 4-5: crop to the ink, fit the longer side to 20 pixels, stretch to a brightest pixel of 255.
function digitlabFitBox(gray, width, height) {
  const brightest = gray.reduce((m, v) => Math.max(m, v), 0);
  if (brightest < DIGITLAB_SPEC.minInk) throw new Error("the image has no visible ink: expected one handwritten digit");
  let top = height, bottom = -1, left = width, right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (gray[y * width + x] > DIGITLAB_SPEC.inkFraction * brightest) {
        top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
      }
    }
  }
  const cropWidth = right - left + 1, cropHeight = bottom - top + 1;
  const crop = new Uint8Array(cropWidth * cropHeight);
  for (let y = 0; y < cropHeight; y++) {
    for (let x = 0; x < cropWidth; x++) crop[y * cropWidth + x] = Math.trunc(gray[(top + y) * width + left + x]);
  }
  const scale = DIGITLAB_SPEC.box / Math.max(cropWidth, cropHeight);
  const outWidth = Math.max(1, roundHalfEven(cropWidth * scale));
  const outHeight = Math.max(1, roundHalfEven(cropHeight * scale));
  const resized = lanczosResize(crop, cropWidth, cropHeight, outWidth, outHeight);
  const stretch = Math.fround(255 / Math.max(resized.reduce((m, v) => Math.max(m, v), 0), 1));
  const digit = Float32Array.from(resized, v => Math.min(255, Math.max(0, Math.fround(v * stretch))));
  return {digit, width: outWidth, height: outHeight};
}

// Step 6: centre in 28x28, shift the centre of mass to the middle, round half to even.
function digitlabCentre({digit, width, height}) {
  const side = DIGITLAB_SPEC.side;
  const canvas = new Float32Array(side * side);
  const top = (side - height) >> 1, left = (side - width) >> 1;
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) canvas[(top + y) * side + left + x] = digit[y * width + x];
  let mass = 0, my = 0, mx = 0;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const v = canvas[y * side + x];
      mass += v; my += y * v; mx += x * v;
    }
  }
  const middle = (side - 1) / 2;
  const dy = roundHalfEven(middle - my / mass), dx = roundHalfEven(middle - mx / mass);
  const out = new Uint8Array(side * side);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const sy = y - dy, sx = x - dx;
      if (sy >= 0 && sy < side && sx >= 0 && sx < side) out[y * side + x] = roundHalfEven(canvas[sy * side + sx]);
    }
  }
  return out;
}

// The whole specification: RGBA pixels (an ImageData's data) -> Uint8Array(784), or an Error for an empty picture.
function digitlabPreprocess(rgba, width, height) {
  const gray = digitlabInkOnBlack(digitlabGray(rgba, width, height), width, height);
  return digitlabCentre(digitlabFitBox(gray, width, height));
}
