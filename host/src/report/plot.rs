//! The pictures and charts, drawn with plotters into an RGB buffer (its bitmap backend) and
//! encoded by `png`; text in DejaVu Sans, embedded (`host/assets/`), so that no system font is
//! needed.
//!
//! - `samples.png` ([`render`]): 2-D data — the samples over the true density's contours, with
//!   axes, a title and a legend; image data — a grid of samples beside a grid of data points, each
//!   pixel upscaled; other data — the first two coordinates.
//! - charts ([`line_chart`]): quality against a parameter (log axes ticked at decades, the spread
//!   over seeds as error bars, values that did not run marked ×), and the consistency trace.

use std::sync::Once;

use anneal_core::score::{IsotropicMixture, Taus};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;
use rayon::prelude::*;

use super::Truth;

/// The font every text is drawn in.
const FONT: &str = "sans-serif";
static FONT_DATA: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the embedded font once per process.
fn fonts() -> anyhow::Result<()> {
    static ONCE: Once = Once::new();
    let mut result = Ok(());
    ONCE.call_once(|| {
        result = plotters::style::register_font(FONT, FontStyle::Normal, FONT_DATA)
            .map_err(|_| anyhow::anyhow!("the embedded DejaVu Sans could not be read"));
    });
    result
}

/// A plotters error as anyhow's.
fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("drawing a figure: {e:?}")
}

/// Draws with `draw` on a `w` × `h` white canvas (white already: `draw` need not fill it) and
/// returns the PNG bytes.
fn picture(
    w: u32,
    h: u32,
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> anyhow::Result<()>,
) -> anyhow::Result<Vec<u8>> {
    fonts()?;
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        draw(&root)?;
        root.present().map_err(err)?;
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, w, h);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    // fdeflate's fast mode with every row "up"-filtered: several times faster than the default
    // level (and than choosing a filter per row) on these mostly white pictures, for files a
    // little larger; the picture was ~7% of a small run's process time.
    enc.set_compression(png::Compression::Fastest);
    enc.write_header()?.write_image_data(&rgb)?;
    Ok(out)
}

/// samples.png for a run's samples, titled `title` (sampler, N, step size).
pub fn render(p: &Truth<'_>, samples: &[f32], title: &str) -> anyhow::Result<Vec<u8>> {
    match p.data.image {
        Some((h, w)) => grids(p, samples, h, w, title),
        None => scatter(p, samples, title),
    }
}

/// Up to 50 samples beside 50 data points, 10 to a row, each pixel drawn as a 5 × 5 block
/// (values in [0, 1]: 0 white, 1 black).
fn grids(
    p: &Truth<'_>,
    samples: &[f32],
    h: usize,
    w: usize,
    title: &str,
) -> anyhow::Result<Vec<u8>> {
    const COLS: usize = 10;
    const ROWS: usize = 5;
    const SCALE: usize = 5;
    const GAP: usize = 4;
    let d = p.data.dim;
    let (cw, ch) = (w * SCALE + GAP, h * SCALE + GAP);
    let (pw, ph) = (COLS * cw + GAP, ROWS * ch + GAP);
    let (top, margin) = (64usize, 20usize);
    let (width, height) = (2 * pw + 3 * margin, ph + top + margin);
    picture(width as u32, height as u32, |root| {
        let title_style = TextStyle::from((FONT, 20).into_font());
        root.draw_text(title, &title_style, (margin as i32, 8)).map_err(err)?;
        let panels = [(samples, "samples"), (&p.data.means[..], "data")];
        for (j, (points, name)) in panels.into_iter().enumerate() {
            let ox = margin + j * (pw + margin);
            let n = points.len() / d;
            let caption = format!("{name} (the first {} of {n})", n.min(COLS * ROWS));
            root.draw_text(&caption, &TextStyle::from((FONT, 15).into_font()), (ox as i32, 36))
                .map_err(err)?;
            let frame = [(ox as i32, top as i32), ((ox + pw) as i32, (top + ph) as i32)];
            root.draw(&Rectangle::new(frame, RGBColor(90, 90, 90).filled())).map_err(err)?;
            for (i, x) in points.chunks_exact(d).take(COLS * ROWS).enumerate() {
                let (cx, cy) = (ox + GAP + (i % COLS) * cw, top + GAP + (i / COLS) * ch);
                for (k, &v) in x.iter().take(h * w).enumerate() {
                    let g = (255.0 * (1.0 - v.clamp(0.0, 1.0))) as u8;
                    let (px, py) = (cx + (k % w) * SCALE, cy + (k / w) * SCALE);
                    let cell = [(px as i32, py as i32), ((px + SCALE) as i32, (py + SCALE) as i32)];
                    root.draw(&Rectangle::new(cell, RGBColor(g, g, g).filled())).map_err(err)?;
                }
            }
        }
        Ok(())
    })
}

/// The samples (first two coordinates) over the data points and, in 2-D, the contours of the
/// true log-density at σ = 0 (σ_N when τ = 0) every 2 nats below its maximum.
fn scatter(p: &Truth<'_>, samples: &[f32], title: &str) -> anyhow::Result<Vec<u8>> {
    let d = p.data.dim;
    // View: the data's box widened by 3τ + 10%, square.
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
    let (x0, x1, y0, y1) =
        (c0[0] - side / 2.0, c0[0] + side / 2.0, c0[1] - side / 2.0, c0[1] + side / 2.0);
    let contours = if d == 2 { contour_cells(p, [x0, y0], side, 400) } else { Vec::new() };
    let yof = |x: &[f32]| if d > 1 { x[1] as f64 } else { 0.0 };
    picture(640, 640, |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 20))
            .margin(12)
            .x_label_area_size(42)
            .y_label_area_size(52)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("x₁")
            .y_desc(if d > 1 { "x₂" } else { "" })
            .label_style((FONT, 14))
            .axis_desc_style((FONT, 15))
            .draw()
            .map_err(err)?;
        let blue = RGBColor(120, 150, 220);
        if !contours.is_empty() {
            chart
                .draw_series(contours.iter().map(|&(x, y)| Pixel::new((x, y), blue)))
                .map_err(err)?
                .label("true log-density, every 2 nats")
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], blue));
        }
        let red = RGBColor(200, 30, 30);
        chart
            .draw_series(
                samples
                    .chunks_exact(d)
                    .map(|x| Circle::new((x[0] as f64, yof(x)), 1, red.filled())),
            )
            .map_err(err)?
            .label(format!("samples ({})", samples.len() / d))
            .legend(move |(x, y)| Circle::new((x + 9, y), 3, red.filled()));
        chart
            .draw_series(
                p.data
                    .means
                    .chunks_exact(d)
                    .take(50)
                    .map(|m| Cross::new((m[0] as f64, yof(m)), 5, BLACK)),
            )
            .map_err(err)?
            .label("data points")
            .legend(|(x, y)| Cross::new((x + 9, y), 5, BLACK));
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font((FONT, 14))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(err)?;
        Ok(())
    })
}

/// The most component evaluations [`contour_cells`] makes (grid cells × components): 2-D data of
/// more than 256 points get no contours (~0.5 s of work at this bound; a 2-D point cloud of 10⁶
/// points would take hours, and its contours would be a blur).
const CONTOUR_WORK_MAX: usize = 256 * 400 * 400;

/// The cells of an `n` × `n` grid over the square [x0, x0 + side] × [y0, y0 + side] where the
/// true log-density crosses a multiple of 2 nats (within 16 nats of its maximum), as points;
/// none for data of more than 256 points ([`CONTOUR_WORK_MAX`]).
fn contour_cells(p: &Truth<'_>, origin: [f64; 2], side: f64, n: usize) -> Vec<(f64, f64)> {
    let Some(level) = contour_levels(p, origin, side, n) else {
        return Vec::new();
    };
    let at = |i: usize, a: usize| origin[a] + (i as f64 + 0.5) / n as f64 * side;
    let top = level.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let mut cells = Vec::new();
    for j in 0..n - 1 {
        for i in 0..n - 1 {
            let l = level[j * n + i];
            if l > top - 8.0 && (l != level[j * n + i + 1] || l != level[(j + 1) * n + i]) {
                cells.push((at(i, 0), at(j, 1)));
            }
        }
    }
    cells
}

/// The 2-D mixture's logit constants (ln w_k − ln v_k, v_k) as [`contour_levels`] evaluates them,
/// and its log-density's offset −ln v (σ = 0 when τ > 0, else σ_N); none when the mixture
/// cannot be built or the grid is too much work.
fn contour_parts(p: &Truth<'_>, n: usize) -> Option<(Vec<(f64, f64)>, f64)> {
    let sigma = if p.tau > 0.0 { 0.0 } else { p.sigma_min };
    let v = anneal_core::score::perturbed_variance(p.tau, sigma);
    let mix = IsotropicMixture::new(
        &p.data.means,
        2,
        Some(&p.data.weights),
        Taus::Shared(p.tau.max(sigma)),
    )
    .ok()?;
    let k = mix.components();
    (k.saturating_mul(n * n) <= CONTOUR_WORK_MAX)
        .then(|| ((0..k).map(|c| mix.logit_parts(c, 0.0)).collect(), -v.ln()))
}

/// ⌊log p(x) / 2⌋ at the centre x of each cell of the grid (row j, column i at `j * n + i`).
///
/// The logits separate: l_k(x) = c_k − (x₁ − μ_k1)²/(2v_k) − (x₂ − μ_k2)²/(2v_k) = a_k(x₁) +
/// b_k(x₂), so with A = max_k a_k and B = max_k b_k each cell's log-density is A + B − ln v +
/// ln s, s = Σ_k e^{a_k − A} e^{b_k − B}: the 2·n·K exponentials once per column and row, and a
/// product sum per cell. Where s underflows (the column's and the row's nearest components differ
/// and are far apart) the cell is computed directly ([`cell_level`]). The logarithm is a
/// polynomial within 1e-9 of ln s ([`ln_near`]); a cell whose half log-density falls within 1e-6
/// of an integer takes libm's `ln` instead, so that the level is the one `ln` gives (tested
/// against the direct evaluation of every cell).
fn contour_levels(p: &Truth<'_>, origin: [f64; 2], side: f64, n: usize) -> Option<Vec<f64>> {
    let (parts, offset) = contour_parts(p, n)?;
    let k = parts.len();
    let at = |i: usize, a: usize| (origin[a] + (i as f64 + 0.5) / n as f64 * side) as f32;
    // For axis `a`: per grid line, its largest term, and the exponentials of every term below
    // it, component by component (`exps[c * n + i]`).
    let axis = |a: usize| {
        let mut max = vec![f64::NEG_INFINITY; n];
        let mut exps = vec![0.0f64; k * n];
        for ((c, v), (mu, e)) in
            parts.iter().zip(p.data.means.chunks_exact(2).zip(exps.chunks_exact_mut(n)))
        {
            for (i, (o, m)) in e.iter_mut().zip(&mut max).enumerate() {
                let d = at(i, a) as f64 - mu[a] as f64;
                *o = if a == 1 { *c } else { 0.0 } - 0.5 * d * d / v;
                *m = m.max(*o);
            }
        }
        for e in exps.chunks_exact_mut(n) {
            e.iter_mut().zip(&max).for_each(|(t, m)| *t = (*t - m).exp());
        }
        (max, exps)
    };
    let ((xmax, xexp), (ymax, yexp)) = (axis(0), axis(1));
    let mut level = vec![0.0f64; n * n];
    level.par_chunks_mut(n).enumerate().for_each_init(
        || (vec![0.0f64; n], vec![0.0f64; n], vec![0.0f64; k]),
        |(s, half, ey), (j, row)| {
            let yj = ymax[j] + offset;
            ey.iter_mut().enumerate().for_each(|(c, e)| *e = yexp[c * n + j]);
            if contour_row_here(&xexp, &xmax, ey, yj, s, half, row) == 0 {
                return;
            }
            for (i, l) in row.iter_mut().enumerate() {
                if s[i] < TINY {
                    *l = cell_level(&parts, &p.data.means, [at(i, 0), at(j, 1)], offset);
                } else if near_integer(half[i], *l) {
                    *l = (0.5 * (xmax[i] + yj + s[i].ln())).floor();
                }
            }
        },
    );
    Some(level)
}

/// Below this a cell's product sum may have lost its largest term to underflow (each term's
/// error is below 1e-323, so above it the sum is accurate to ~K·1e-23 relative).
const TINY: f64 = 1e-300;

/// Whether `half` lies within 1e-6 (far more than [`ln_near`]'s error) of an integer: its floor
/// `f` is then libm's to decide.
#[inline(always)]
fn near_integer(half: f64, f: f64) -> bool {
    half - f <= 1e-6 || f + 1.0 - half <= 1e-6
}

/// [`contour_row`] compiled for this CPU's vector unit.
fn contour_row_here(
    xexp: &[f64],
    xmax: &[f64],
    ey: &[f64],
    yj: f64,
    s: &mut [f64],
    half: &mut [f64],
    level: &mut [f64],
) -> usize {
    crate::score::simd::dispatch!(
        contour_row,
        (xexp: &[f64], xmax: &[f64], ey: &[f64], yj: f64, s: &mut [f64], half: &mut [f64], level: &mut [f64]) -> usize
    )
}

/// One row of the grid: each cell's product sum s (component by component, in order), its half
/// log-density ½(A + B − ln v + ln s) by [`ln_near`] and that half's floor, the level; the same
/// operations (no contraction into FMAs) at every instruction-set level. Returns how many cells
/// the caller must finish: an s below [`TINY`], or a half [`near_integer`].
#[inline(always)]
fn contour_row(
    xexp: &[f64],
    xmax: &[f64],
    ey: &[f64],
    yj: f64,
    s: &mut [f64],
    half: &mut [f64],
    level: &mut [f64],
) -> usize {
    let n = s.len();
    s.fill(0.0);
    for (e, &b) in xexp.chunks_exact(n).zip(ey) {
        s.iter_mut().zip(e).for_each(|(si, &a)| *si += a * b);
    }
    let mut unsure = 0;
    for (((h, l), &si), &a) in half.iter_mut().zip(level).zip(s.iter()).zip(xmax) {
        *h = 0.5 * (a + yj + ln_near(si));
        *l = h.floor();
        unsure += usize::from((si < TINY) | near_integer(*h, *l));
    }
    unsure
}

/// ⌊(t + ln s)/2⌋ for s ≥ [`TINY`], as libm's `ln` gives it (what [`contour_levels`] does).
#[cfg(test)]
fn half_level(t: f64, s: f64) -> f64 {
    let half = 0.5 * (t + ln_near(s));
    let f = half.floor();
    if near_integer(half, f) { (0.5 * (t + s.ln())).floor() } else { f }
}

/// ⌊log p(x) / 2⌋ at one point, evaluated directly: the mixture's logits from its constants
/// `parts` (distances in f64, as [`contour_levels`] takes them), their log-sum-exp, plus `offset`
/// (−ln v).
fn cell_level(parts: &[(f64, f64)], means: &[f32], x: [f32; 2], offset: f64) -> f64 {
    let logits = || {
        parts.iter().zip(means.chunks_exact(2)).map(|(&(w, v), mu)| {
            let d = [x[0] as f64 - mu[0] as f64, x[1] as f64 - mu[1] as f64];
            w - 0.5 * (d[0] * d[0] + d[1] * d[1]) / v
        })
    };
    let m = logits().fold(f64::NEG_INFINITY, f64::max);
    let lse = m + logits().map(|l| (l - m).exp()).sum::<f64>().ln() + offset;
    (lse / 2.0).floor()
}

/// ln s for a positive normal s, within 1e-9: s = 2^e m with m in [√½, √2), ln m = 2 atanh t,
/// t = (m − 1)/(m + 1), |t| ≤ 0.172, by its series to t⁹ (the rest is below 2|t|¹¹/11 < 8e-10).
#[inline(always)]
fn ln_near(s: f64) -> f64 {
    let bits = s.to_bits();
    let m = f64::from_bits((bits & ((1u64 << 52) - 1)) | (1023u64 << 52));
    let big = m > std::f64::consts::SQRT_2;
    let m = if big { 0.5 * m } else { m };
    let e = (((bits >> 52) & 0x7ff) as i32 - 1023 + i32::from(big)) as f64;
    let t = (m - 1.0) / (m + 1.0);
    let t2 = t * t;
    let series = 1.0 + t2 * (1.0 / 3.0 + t2 * (1.0 / 5.0 + t2 * (1.0 / 7.0 + t2 / 9.0)));
    e * std::f64::consts::LN_2 + 2.0 * t * series
}

/// One line of a chart.
pub struct Series {
    /// Legend text.
    pub label: String,
    /// (x, y) points, drawn in x order; non-finite points are skipped.
    pub points: Vec<(f64, f64)>,
    /// The spread of each point (one standard deviation over seeds), drawn as an error bar;
    /// empty for none.
    pub spread: Vec<f64>,
    /// x positions to mark with an × on the x axis (values that could not run).
    pub flagged: Vec<f64>,
}

/// A line chart's texts and axes.
pub struct Chart<'a> {
    /// Above the plot.
    pub title: &'a str,
    /// The x axis.
    pub x_label: &'a str,
    /// The y axis.
    pub y_label: &'a str,
    /// x on a log scale (ticks at decades).
    pub x_log: bool,
    /// The legend in the upper left corner (where rising curves leave room), else upper right.
    pub legend_left: bool,
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// The range of the finite values, widened to [a − pad, b + pad] (a unit range when empty or
/// flat).
fn span(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
    if !lo.is_finite() {
        (0.0, 1.0)
    } else if hi <= lo {
        (lo - 0.5 * lo.abs().max(1e-3), hi + 0.5 * hi.abs().max(1e-3))
    } else {
        (lo, hi)
    }
}

/// A line chart of `series` (markers, error bars, × for values that did not run, a legend).
pub fn line_chart(c: &Chart<'_>, series: &[Series]) -> anyhow::Result<Vec<u8>> {
    let usable = |x: f64| x.is_finite() && (!c.x_log || x > 0.0);
    let xs = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.0).chain(s.flagged.iter().copied()))
        .filter(|&x| usable(x));
    let (mut x0, mut x1) = span(xs);
    if c.x_log {
        (x0, x1) = (x0 / 1.3, x1 * 1.3);
    } else {
        let pad = 0.03 * (x1 - x0);
        (x0, x1) = (x0 - pad, x1 + pad);
    }
    let ys = series.iter().flat_map(|s| {
        s.points.iter().enumerate().flat_map(move |(i, &(_, y))| {
            let sd = s.spread.get(i).copied().unwrap_or(0.0);
            [y - sd, y + sd]
        })
    });
    let (y0, mut y1) = span(ys);
    let y0 = y0.min(0.0);
    y1 += 0.08 * (y1 - y0);
    picture(760, 480, |root| {
        let builder = |root| {
            let mut b = ChartBuilder::on(root);
            b.caption(c.title, (FONT, 18)).margin(12).x_label_area_size(44).y_label_area_size(64);
            b
        };
        if c.x_log {
            let mut chart =
                builder(root).build_cartesian_2d((x0..x1).log_scale(), y0..y1).map_err(err)?;
            draw_lines(&mut chart, c, series, y0, &usable)
        } else {
            let mut chart = builder(root).build_cartesian_2d(x0..x1, y0..y1).map_err(err)?;
            draw_lines(&mut chart, c, series, y0, &usable)
        }
    })
}

/// The mesh, the lines, the error bars, the ×'s and the legend on a built chart.
fn draw_lines<'a, X>(
    chart: &mut ChartContext<
        'a,
        BitMapBackend<'a>,
        Cartesian2d<X, plotters::coord::types::RangedCoordf64>,
    >,
    c: &Chart<'_>,
    series: &[Series],
    y0: f64,
    usable: &dyn Fn(f64) -> bool,
) -> anyhow::Result<()>
where
    X: Ranged<ValueType = f64> + plotters::coord::ranged1d::ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(c.x_label)
        .y_desc(c.y_label)
        .label_style((FONT, 13))
        .axis_desc_style((FONT, 15))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(err)?;
    for (i, s) in series.iter().enumerate() {
        let col = COLORS[i % COLORS.len()];
        let pts: Vec<(usize, (f64, f64))> = s
            .points
            .iter()
            .copied()
            .enumerate()
            .filter(|(_, (x, y))| usable(*x) && y.is_finite())
            .collect();
        chart
            .draw_series(LineSeries::new(pts.iter().map(|&(_, p)| p), col.stroke_width(2)))
            .map_err(err)?
            .label(s.label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], col.stroke_width(2)));
        chart
            .draw_series(pts.iter().map(|&(_, p)| Circle::new(p, 3, col.filled())))
            .map_err(err)?;
        chart
            .draw_series(pts.iter().filter_map(|&(k, (x, y))| {
                let sd = *s.spread.get(k)?;
                (sd > 0.0).then(|| ErrorBar::new_vertical(x, y - sd, y, y + sd, col, 6))
            }))
            .map_err(err)?;
        chart
            .draw_series(
                s.flagged
                    .iter()
                    .filter(|&&x| usable(x))
                    .map(|&x| Cross::new((x, y0), 6, col.stroke_width(2))),
            )
            .map_err(err)?;
    }
    if series.iter().any(|s| !s.flagged.is_empty()) {
        chart
            .draw_series(std::iter::empty::<Cross<(f64, f64), i32>>())
            .map_err(err)?
            .label("× on the axis: did not run")
            .legend(|(x, y)| Cross::new((x + 10, y), 5, BLACK));
    }
    chart
        .configure_series_labels()
        .position(if c.legend_left {
            SeriesLabelPosition::UpperLeft
        } else {
            SeriesLabelPosition::UpperRight
        })
        .label_font((FONT, 13))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.5))
        .draw()
        .map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::data;

    /// (width, height, the share of pixels that are not white) of PNG bytes.
    fn decode(bytes: &[u8]) -> (u32, u32, f64) {
        let dec = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut r = dec.read_info().unwrap();
        let mut buf = vec![0; r.output_buffer_size().unwrap()];
        let info = r.next_frame(&mut buf).unwrap();
        let px = &buf[..info.buffer_size()];
        let ink = px.chunks_exact(3).filter(|p| *p != [255, 255, 255]).count();
        (info.width, info.height, ink as f64 / (px.len() / 3) as f64)
    }

    /// The grid's levels (separated logits, a polynomial logarithm, libm's near the levels'
    /// boundaries) equal the direct evaluation of every cell: NCSN's toy as the toy run draws it
    /// (τ = 0, σ_N = 1) and with τ = 1; and 7 components with τ = 0.05 over a wide view, where
    /// most cells' product sums underflow and fall back to the direct evaluation.
    #[test]
    fn contour_levels_equal_the_direct_evaluation() {
        let toy = data::load("toy2d").unwrap();
        let mut wide = toy.clone();
        wide.means =
            vec![-3.0, 0.5, 2.0, 2.0, 0.1, -4.0, 4.5, -1.0, -0.3, 0.2, 1.7, -2.2, 3.3, 3.9];
        wide.weights = vec![0.1, 0.2, 0.05, 0.15, 0.2, 0.1, 0.2];
        let cases = [(&toy, 0.0, 1.0, 12.0), (&toy, 1.0, 0.01, 18.0), (&wide, 0.05, 0.01, 16.0)];
        let n = 300;
        for (data, tau, sigma_min, side) in cases {
            let truth = Truth { data, tau, sigma_min };
            let origin = [-side / 2.0, -side / 2.0];
            let level = contour_levels(&truth, origin, side, n).unwrap();
            let (parts, offset) = contour_parts(&truth, n).unwrap();
            let at = |i: usize, a: usize| (origin[a] + (i as f64 + 0.5) / n as f64 * side) as f32;
            let mut distinct = std::collections::BTreeSet::new();
            for j in 0..n {
                for i in 0..n {
                    let direct = cell_level(&parts, &data.means, [at(i, 0), at(j, 1)], offset);
                    assert_eq!(level[j * n + i], direct, "τ {tau}: cell ({i}, {j})");
                    distinct.insert(direct as i64);
                }
            }
            // The grid spans many levels: the comparison is not of a flat field.
            assert!(distinct.len() > 20, "τ {tau}: {} levels", distinct.len());
        }
        // At the levels' boundaries (t + ln s within a few ulps of an even integer, either side,
        // and at a distance the polynomial alone would decide) the level is libm's.
        for s in [1e-300f64, 3.7e-100, 0.015, 1.0, 1.5, 2.0, 255.9] {
            for two_l in [-4232.0, -14.0, -2.0, 0.0, 2.0, 6.0] {
                for off in [-1e-7, -1e-12, -1e-15, 0.0, 1e-15, 1e-12, 1e-7, 0.3, -0.3] {
                    let t = two_l - s.ln() + off;
                    assert_eq!(half_level(t, s), (0.5 * (t + s.ln())).floor(), "{t} {s}");
                }
            }
        }
        // ln_near is within 1e-9 of ln over many octaves.
        for i in 0..10_000 {
            let s = 1e-300 * 1.0737f64.powi(i);
            if s > 1e300 {
                break;
            }
            assert!((ln_near(s) - s.ln()).abs() < 1e-9, "{s}");
        }
    }

    /// Every picture is a PNG of its stated size with something drawn on it (text, axes, points)
    /// but mostly background; degenerate input (no finite point, one value) still draws.
    #[test]
    fn pictures_are_drawn() {
        let toy = data::load("toy2d").unwrap();
        let truth = Truth { data: &toy, tau: 1.0, sigma_min: 0.01 };
        let samples: Vec<f32> = (0..400).map(|i| ((i * 37) % 23) as f32 / 2.0 - 5.0).collect();
        let (w, h, ink) = decode(&render(&truth, &samples, "toy").unwrap());
        assert_eq!((w, h), (640, 640));
        assert!(ink > 0.01 && ink < 0.6, "ink {ink}");
        let digits = data::load("digits").unwrap();
        let truth = Truth { data: &digits, tau: 0.05, sigma_min: 0.01 };
        let (w, _, ink) = decode(&render(&truth, &digits.means[..64 * 30], "digits").unwrap());
        assert!(w > 600 && ink > 0.2, "{w} {ink}");
        let chart =
            Chart { title: "t", x_label: "x", y_label: "y", x_log: true, legend_left: false };
        let s = Series {
            label: "a".into(),
            points: vec![(1e-4, 1.0), (1e-3, f64::NAN), (1e-2, 0.5), (f64::INFINITY, 2.0)],
            spread: vec![0.1, 0.0, 0.2, 0.0],
            flagged: vec![1e-3],
        };
        let (w, h, ink) = decode(&line_chart(&chart, &[s]).unwrap());
        assert_eq!((w, h), (760, 480));
        assert!(ink > 0.01 && ink < 0.5, "ink {ink}");
        let empty =
            Series { label: "none".into(), points: vec![], spread: vec![], flagged: vec![] };
        let lin = Chart { x_log: false, ..chart };
        assert!(line_chart(&lin, &[empty]).is_ok());
        let one =
            Series { label: "1".into(), points: vec![(3.0, 3.0)], spread: vec![], flagged: vec![] };
        assert!(line_chart(&chart, &[one]).is_ok());
    }
}
