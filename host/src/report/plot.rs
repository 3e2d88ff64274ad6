//! samples.png: for 2-D data, the samples over the true density's contours; for image data, a
//! grid of samples; otherwise the first two coordinates.

use anneal_core::score::{IsotropicMixture, Taus};

use super::Truth;

const W: usize = 512;

struct Canvas {
    w: usize,
    h: usize,
    rgb: Vec<u8>,
}

impl Canvas {
    fn new(w: usize, h: usize, bg: u8) -> Self {
        Canvas { w, h, rgb: vec![bg; w * h * 3] }
    }
    fn set(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.w && y < self.h {
            let i = (y * self.w + x) * 3;
            self.rgb[i..i + 3].copy_from_slice(&c);
        }
    }
    fn png(&self) -> anyhow::Result<Vec<u8>> {
        let mut out = Vec::new();
        let mut enc = png::Encoder::new(&mut out, self.w as u32, self.h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(&self.rgb)?;
        Ok(out)
    }
}

/// The PNG bytes.
pub fn render(p: &Truth<'_>, samples: &[f32]) -> anyhow::Result<Vec<u8>> {
    let d = p.data.dim;
    if let Some((h, w)) = p.data.image {
        return grid(samples, d, h, w);
    }
    scatter(p, samples)
}

fn grid(samples: &[f32], d: usize, h: usize, w: usize) -> anyhow::Result<Vec<u8>> {
    let (cols, rows) = (10usize, (samples.len() / d).min(100).div_ceil(10).max(1));
    let scale = 4;
    let (cw, ch) = (w * scale + 2, h * scale + 2);
    let mut c = Canvas::new(cols * cw + 2, rows * ch + 2, 80);
    for (i, x) in samples.chunks_exact(d).take(100).enumerate() {
        let (ox, oy) = ((i % cols) * cw + 2, (i / cols) * ch + 2);
        for py in 0..h * scale {
            for px in 0..w * scale {
                let v = x[(py / scale) * w + px / scale].clamp(0.0, 1.0);
                let g = (255.0 * (1.0 - v)) as u8;
                c.set(ox + px, oy + py, [g, g, g]);
            }
        }
    }
    c.png()
}

fn scatter(p: &Truth<'_>, samples: &[f32]) -> anyhow::Result<Vec<u8>> {
    let d = p.data.dim;
    // View: the data's box widened by 3τ + 10% (2-D: x, y = the first two coordinates).
    let (mut lo, mut hi) = ([f64::INFINITY; 2], [f64::NEG_INFINITY; 2]);
    for m in p.data.means.chunks_exact(d) {
        for a in 0..2.min(d) {
            lo[a] = lo[a].min(m[a] as f64);
            hi[a] = hi[a].max(m[a] as f64);
        }
    }
    if d == 1 {
        (lo[1], hi[1]) = (-1.0, 1.0);
    }
    for a in 0..2 {
        let pad = 3.0 * p.tau + 0.1 * (hi[a] - lo[a]) + 1e-3;
        lo[a] -= pad;
        hi[a] += pad;
    }
    let side = (hi[0] - lo[0]).max(hi[1] - lo[1]);
    let c0 = [(lo[0] + hi[0]) / 2.0, (lo[1] + hi[1]) / 2.0];
    let to_px = |v: f64, a: usize| ((v - (c0[a] - side / 2.0)) / side * W as f64) as isize;
    let mut c = Canvas::new(W, W, 255);
    if d == 2 {
        // Log-density of the ground truth at σ = 0 (or σ_N when τ = 0), contours every 2 nats
        // below the maximum, drawn where the level index changes between neighbours.
        let sigma = if p.tau > 0.0 { 0.0 } else { p.sigma_min };
        let v = anneal_core::score::perturbed_variance(p.tau, sigma);
        if let Ok(mix) = IsotropicMixture::new(
            &p.data.means,
            2,
            Some(&p.data.weights),
            Taus::Shared(p.tau.max(sigma)),
        ) {
            let k = mix.components();
            let mut logits = vec![0.0f64; k];
            let mut level = vec![0i64; W * W];
            for py in 0..W {
                for px in 0..W {
                    let x = [
                        (c0[0] - side / 2.0 + (px as f64 + 0.5) / W as f64 * side) as f32,
                        (c0[1] + side / 2.0 - (py as f64 + 0.5) / W as f64 * side) as f32,
                    ];
                    let _ = mix.logits(&x, 0.0, &mut logits);
                    let m = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let lse = m + logits.iter().map(|l| (l - m).exp()).sum::<f64>().ln() - v.ln();
                    level[py * W + px] = (lse / 2.0).floor() as i64;
                }
            }
            let top = level.iter().cloned().max().unwrap_or(0);
            for py in 0..W - 1 {
                for px in 0..W - 1 {
                    let l = level[py * W + px];
                    if l > top - 8 && (l != level[py * W + px + 1] || l != level[(py + 1) * W + px])
                    {
                        c.set(px, py, [120, 150, 220]);
                    }
                }
            }
        }
    }
    for x in samples.chunks_exact(d) {
        let (px, py) = (
            to_px(x[0] as f64, 0),
            if d > 1 { W as isize - to_px(x[1] as f64, 1) } else { W as isize / 2 },
        );
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            if px + dx >= 0 && py + dy >= 0 {
                c.set((px + dx) as usize, (py + dy) as usize, [200, 30, 30]);
            }
        }
    }
    for m in p.data.means.chunks_exact(d).take(50) {
        let (px, py) = (
            to_px(m[0] as f64, 0),
            if d > 1 { W as isize - to_px(m[1] as f64, 1) } else { W as isize / 2 },
        );
        for t in -4isize..=4 {
            for (x, y) in [(px + t, py), (px, py + t)] {
                if x >= 0 && y >= 0 {
                    c.set(x as usize, y as usize, [0, 0, 0]);
                }
            }
        }
    }
    c.png()
}

/// One line of a chart.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// (x, y) points, drawn in x order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// x positions to mark with an × on the x axis (values that could not run).
    pub flagged: Vec<f64>,
}

/// A 3 × 5 bitmap font for axis numbers and short labels (rows top to bottom, 3 bits each).
fn glyph(c: char) -> Option<[u8; 5]> {
    Some(match c {
        '0' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 2, 2],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        '+' => [0, 2, 7, 2, 0],
        '=' => [0, 7, 0, 7, 0],
        '/' => [1, 1, 2, 4, 4],
        '_' => [0, 0, 0, 0, 7],
        ' ' => [0, 0, 0, 0, 0],
        'a' => [0, 7, 1, 7, 7],
        'b' => [4, 4, 7, 5, 7],
        'c' => [0, 7, 4, 4, 7],
        'd' => [1, 1, 7, 5, 7],
        'e' => [7, 5, 7, 4, 7],
        'f' => [3, 4, 6, 4, 4],
        'g' => [7, 5, 7, 1, 6],
        'h' => [4, 4, 7, 5, 5],
        'i' => [2, 0, 2, 2, 2],
        'k' => [4, 5, 6, 5, 5],
        'l' => [2, 2, 2, 2, 3],
        'm' => [0, 7, 7, 5, 5],
        'n' => [0, 6, 5, 5, 5],
        'o' => [0, 7, 5, 5, 7],
        'p' => [7, 5, 7, 4, 4],
        'r' => [0, 7, 4, 4, 4],
        's' => [7, 4, 7, 1, 7],
        't' => [4, 7, 4, 4, 3],
        'u' => [0, 5, 5, 5, 7],
        'v' => [0, 5, 5, 5, 2],
        'w' => [0, 5, 7, 7, 5],
        'x' => [0, 5, 2, 2, 5],
        'y' => [5, 5, 7, 1, 6],
        'N' => [5, 7, 7, 7, 5],
        'W' => [5, 5, 7, 7, 5],
        'S' => [7, 4, 7, 1, 7],
        'T' => [7, 2, 2, 2, 2],
        'V' => [5, 5, 5, 5, 2],
        _ => return None,
    })
}

impl Canvas {
    /// Text at (x, y) (top left), each glyph scaled by 2; unknown characters are skipped.
    fn text(&mut self, x: usize, y: usize, s: &str, c: [u8; 3]) {
        for (i, ch) in s.chars().enumerate() {
            let Some(g) = glyph(ch) else { continue };
            for (row, bits) in g.iter().enumerate() {
                for col in 0..3 {
                    if bits & (4 >> col) != 0 {
                        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                            self.set(x + i * 8 + col * 2 + dx, y + row * 2 + dy, c);
                        }
                    }
                }
            }
        }
    }

    fn line(&mut self, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: [u8; 3]) {
        let steps = ((x1 - x0).abs().max((y1 - y0).abs()) as usize).max(1);
        for t in 0..=steps {
            let f = t as f64 / steps as f64;
            let (x, y) = (x0 + f * (x1 - x0), y0 + f * (y1 - y0));
            if x >= 0.0 && y >= 0.0 {
                self.set(x as usize, y as usize, c);
                self.set(x as usize + 1, y as usize, c);
            }
        }
    }
}

const COLORS: [[u8; 3]; 8] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [23, 190, 207],
];

fn tick(v: f64) -> String {
    if v != 0.0 && (v.abs() >= 1e4 || v.abs() < 1e-2) {
        format!("{v:.0e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// A line chart (x optionally on a log scale) with axis ticks and a legend.
pub fn line_chart(
    series: &[Series],
    x_log: bool,
    x_label: &str,
    y_label: &str,
) -> anyhow::Result<Vec<u8>> {
    let (w, h) = (640usize, 420usize);
    let (left, right, top, bottom) = (70.0, 150.0, 20.0, 50.0);
    let tx = |x: f64| if x_log { x.log10() } else { x };
    let pts = series
        .iter()
        .flat_map(|s| s.points.iter())
        .filter(|(x, y)| tx(*x).is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) =
        (f64::INFINITY, f64::NEG_INFINITY, f64::INFINITY, f64::NEG_INFINITY);
    for &(x, y) in pts {
        x0 = x0.min(tx(x));
        x1 = x1.max(tx(x));
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    for x in series.iter().flat_map(|s| s.flagged.iter()).map(|&x| tx(x)).filter(|x| x.is_finite())
    {
        x0 = x0.min(x);
        x1 = x1.max(x);
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    y0 = y0.min(0.0);
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    y1 += 0.05 * (y1 - y0);
    let px = |x: f64| left + (tx(x) - x0) / (x1 - x0) * (w as f64 - left - right);
    let py = |y: f64| h as f64 - bottom - (y - y0) / (y1 - y0) * (h as f64 - top - bottom);
    let mut c = Canvas::new(w, h, 255);
    let axis = [0, 0, 0];
    c.line((left, top), (left, h as f64 - bottom), axis);
    c.line((left, h as f64 - bottom), (w as f64 - right, h as f64 - bottom), axis);
    for t in 0..=4 {
        let yv = y0 + (y1 - y0) * t as f64 / 4.0;
        let y = py(yv);
        c.line((left - 5.0, y), (left, y), axis);
        c.text(2, (y as usize).saturating_sub(5), &tick(yv), axis);
        let xv = x0 + (x1 - x0) * t as f64 / 4.0;
        let xr = if x_log { 10f64.powf(xv) } else { xv };
        let x = left + (xv - x0) / (x1 - x0) * (w as f64 - left - right);
        c.line((x, h as f64 - bottom), (x, h as f64 - bottom + 5.0), axis);
        c.text((x as usize).saturating_sub(12), h - bottom as usize + 10, &tick(xr), axis);
    }
    c.text(w / 2 - 60, h - 18, x_label, axis);
    c.text(left as usize + 5, 4, y_label, axis);
    if series.iter().any(|s| !s.flagged.is_empty()) {
        c.text(
            w - right as usize + 10,
            top as usize + 16 * (series.len() + 1),
            "x = not run",
            axis,
        );
    }
    for (i, s) in series.iter().enumerate() {
        let col = COLORS[i % COLORS.len()];
        let mut last: Option<(f64, f64)> = None;
        for &(x, y) in &s.points {
            if !(tx(x).is_finite() && y.is_finite()) {
                last = None;
                continue;
            }
            let p = (px(x), py(y));
            if let Some(q) = last {
                c.line(q, p, col);
            }
            for (dx, dy) in [(-2.0, 0.0), (2.0, 0.0), (0.0, -2.0), (0.0, 2.0), (0.0, 0.0)] {
                c.line((p.0 + dx, p.1 + dy), (p.0 + dx, p.1 + dy), col);
            }
            last = Some(p);
        }
        for &x in &s.flagged {
            if tx(x).is_finite() {
                let (cx, cy) = (px(x), h as f64 - bottom - 6.0 - 3.0 * (i % 4) as f64);
                c.line((cx - 3.0, cy - 3.0), (cx + 3.0, cy + 3.0), col);
                c.line((cx - 3.0, cy + 3.0), (cx + 3.0, cy - 3.0), col);
            }
        }
        let ly = top as usize + 10 + 16 * i;
        c.line(
            ((w as f64 - right + 10.0), ly as f64 + 4.0),
            ((w as f64 - right + 30.0), ly as f64 + 4.0),
            col,
        );
        c.text(w - right as usize + 36, ly, &s.label, col);
    }
    c.png()
}
