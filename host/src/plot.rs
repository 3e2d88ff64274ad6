//! samples.png: for 2-D data, the samples over the true density's contours; for image data, a
//! grid of samples; otherwise the first two coordinates.

use anneal_core::score::{IsotropicMixture, Taus};

use crate::sample::Prepared;

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
pub fn render(p: &Prepared, samples: &[f32]) -> anyhow::Result<Vec<u8>> {
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

fn scatter(p: &Prepared, samples: &[f32]) -> anyhow::Result<Vec<u8>> {
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
        let sigma = if p.tau > 0.0 { 0.0 } else { anneal_core::Schedule::sigma_min(&p.schedule) };
        let v = p.tau * p.tau + sigma * sigma;
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
