//! Stack high-water mark by painting: fill the free stack with a pattern at start, later find the
//! lowest word that was overwritten.

use core::ptr::{addr_of, read_volatile, write_volatile};

const PAINT: u32 = 0xA5A5_5A5A;

unsafe extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Fills the unused stack below the current stack pointer (less 256 bytes) with the pattern.
pub fn paint() {
    let bottom = addr_of!(_stack_end) as usize;
    let sp = cortex_m::register::msp::read() as usize;
    let mut a = bottom;
    while a + 256 < sp {
        // SAFETY: [bottom, sp − 256) is RAM reserved for the stack and not in use yet.
        unsafe { write_volatile(a as *mut u32, PAINT) };
        a += 4;
    }
}

/// The deepest stack use since [`paint`], in bytes from the top of the stack.
pub fn high_water() -> usize {
    let bottom = addr_of!(_stack_end) as usize;
    let top = addr_of!(_stack_start) as usize;
    let mut a = bottom;
    // SAFETY: word-aligned reads of the painted stack region.
    while a < top && unsafe { read_volatile(a as *const u32) } == PAINT {
        a += 4;
    }
    top - a
}
