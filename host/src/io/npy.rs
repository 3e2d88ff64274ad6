//! A minimal `.npy` reader and writer (format version 1.0/2.0/3.0): little-endian `f4`/`f8`
//! (reading also `i1`…`i8`, `u1`…`u8`), C order; an n-D array is read as its first axis ×
//! the product of the others (images as flat rows).
//!
//! Hand-written rather than a crate because the format is one short header, and every way a
//! header can be wrong must be reported to the user precisely ("npy header: …"); the general
//! crates report those as generic I/O errors.

/// A 2-D array of f64 read from `.npy` (a 1-D array is one column; n-D: first axis × the rest).
pub struct Array {
    /// Rows × columns, row-major.
    pub data: Vec<f64>,
    /// Rows.
    pub rows: usize,
    /// Columns.
    pub cols: usize,
}

/// The most header bytes read (numpy writes a few hundred).
const MAX_HEADER: usize = 1 << 20;

/// How many bytes the header of a `.npy` takes, from its first 12 bytes (the magic, the version
/// and the header's length): a file that is not `.npy` is refused on these.
pub fn header_size(first: &[u8]) -> Result<usize, String> {
    let err = |m: &str| format!("npy header: {m}");
    if first.len() < 10 || &first[..6] != b"\x93NUMPY" {
        return Err(err("missing the \\x93NUMPY magic (not a .npy file, or truncated)"));
    }
    let (major, minor) = (first[6], first[7]);
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([first[8], first[9]]) as usize, 10),
        2 | 3 if first.len() >= 12 => {
            (u32::from_le_bytes([first[8], first[9], first[10], first[11]]) as usize, 12)
        }
        _ => return Err(err(&format!("unsupported format version {major}.{minor}"))),
    };
    if hlen > MAX_HEADER {
        return Err(err(&format!("a header of {hlen} bytes (numpy writes a few hundred)")));
    }
    Ok(start + hlen)
}

/// The shape and type a `.npy` header declares, and the bytes its data take.
pub struct Header {
    /// Where the data start.
    pub offset: usize,
    /// Rows (the first axis).
    pub rows: usize,
    /// Columns (the product of the other axes).
    pub cols: usize,
    /// The bytes of the data.
    pub data_bytes: usize,
    kind: char,
    size: usize,
    /// The dtype as declared (`<f4`).
    pub descr: String,
}

/// Parses the header at the start of `bytes` (which need hold no more than the header).
pub fn header(bytes: &[u8]) -> Result<Header, String> {
    let err = |m: &str| format!("npy header: {m}");
    let offset = header_size(bytes)?;
    let start = if bytes[6] == 1 { 10 } else { 12 };
    let hlen = offset - start;
    let header = bytes
        .get(start..start + hlen)
        .ok_or_else(|| err(&format!("header of {hlen} bytes is truncated")))?;
    let header = std::str::from_utf8(header).map_err(|_| err("header is not text"))?;
    let field = |key: &str| -> Result<&str, String> {
        let at =
            header.find(&format!("'{key}'")).ok_or_else(|| err(&format!("no '{key}' entry")))?;
        let rest = header[at + key.len() + 2..].trim_start();
        rest.strip_prefix(':')
            .map(str::trim_start)
            .ok_or_else(|| err(&format!("malformed '{key}' entry")))
    };
    let descr = field("descr")?;
    let descr = descr
        .get(1..)
        .and_then(|d| d.split('\'').next())
        .ok_or_else(|| err("malformed 'descr'"))?;
    let fortran = field("fortran_order")?;
    if fortran.starts_with("True") {
        return Err(err("fortran_order is True; save the array in C order (np.ascontiguousarray)"));
    }
    let shape = field("shape")?;
    let shape = shape
        .strip_prefix('(')
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| err("malformed 'shape'"))?;
    let dims: Vec<usize> = shape
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err(&format!("shape entry '{s}' is not a size"))))
        .collect::<Result<_, _>>()?;
    let (rows, cols) = match dims[..] {
        [n] => (n, 1),
        [n, d] => (n, d),
        [n, ref rest @ ..] if !rest.is_empty() => (n, rest.iter().product()),
        _ => {
            return Err(err(&format!("shape {dims:?}: expected points × dimensions (≥ 1-D)")));
        }
    };
    let (endian, kind, size) = {
        let mut c = descr.chars();
        let e = c.next().unwrap_or('?');
        let k = c.next().unwrap_or('?');
        let n: usize =
            c.as_str().parse().map_err(|_| err(&format!("dtype '{descr}' not understood")))?;
        (e, k, n)
    };
    if size > 1 && endian == '>' {
        return Err(err(&format!(
            "dtype '{descr}' is big-endian; save as little-endian ('<f4' or '<f8')"
        )));
    }
    let count = rows.checked_mul(cols).ok_or_else(|| err("shape overflows"))?;
    let need = count.checked_mul(size).ok_or_else(|| err("shape overflows"))?;
    if !matches!((kind, size), ('f', 4) | ('f', 8) | ('i' | 'u', 1 | 2 | 4 | 8)) {
        return Err(err(&format!("dtype '{descr}' is not supported (use float32 or float64)")));
    }
    Ok(Header { offset, rows, cols, data_bytes: need, kind, size, descr: descr.to_string() })
}

/// Parses `.npy` bytes.
pub fn read(bytes: &[u8]) -> Result<Array, String> {
    let Header { offset, rows, cols, data_bytes: need, kind, size, descr } = header(bytes)?;
    let body = &bytes[offset..];
    let count = rows * cols;
    if body.len() < need {
        return Err(format!(
            "npy data truncated: shape ({rows}, {cols}) of '{descr}' needs {need} bytes, the file has {}",
            body.len()
        ));
    }
    let mut data = Vec::with_capacity(count);
    for chunk in body[..need].chunks_exact(size) {
        let v = match (kind, size) {
            ('f', 4) => f32::from_le_bytes(chunk.try_into().unwrap()) as f64,
            ('f', 8) => f64::from_le_bytes(chunk.try_into().unwrap()),
            ('i', 1) => chunk[0] as i8 as f64,
            ('u', 1) => chunk[0] as f64,
            ('i', 2) => i16::from_le_bytes(chunk.try_into().unwrap()) as f64,
            ('u', 2) => u16::from_le_bytes(chunk.try_into().unwrap()) as f64,
            ('i', 4) => i32::from_le_bytes(chunk.try_into().unwrap()) as f64,
            ('u', 4) => u32::from_le_bytes(chunk.try_into().unwrap()) as f64,
            ('i', 8) => i64::from_le_bytes(chunk.try_into().unwrap()) as f64,
            ('u', 8) => u64::from_le_bytes(chunk.try_into().unwrap()) as f64,
            _ => unreachable!("header() accepts only the types above"),
        };
        data.push(v);
    }
    Ok(Array { data, rows, cols })
}

/// Serialises a rows × cols f32 array (C order, `<f4`, format 1.0).
pub fn write_f32(data: &[f32], rows: usize, cols: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(128 + 4 * data.len());
    // (Writing into a Vec cannot fail.)
    let _ = write_f32_to(&mut out, data, rows, cols);
    out
}

/// [`write_f32`] streamed into `w` (a large array is not copied).
pub fn write_f32_to(
    w: &mut dyn std::io::Write,
    data: &[f32],
    rows: usize,
    cols: usize,
) -> std::io::Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    w.write_all(b"\x93NUMPY\x01\x00")?;
    w.write_all(&(header.len() as u16).to_le_bytes())?;
    w.write_all(header.as_bytes())?;
    for chunk in data.chunks(4096) {
        let bytes: Vec<u8> = chunk.iter().flat_map(|v| v.to_le_bytes()).collect();
        w.write_all(&bytes)?;
    }
    Ok(())
}
