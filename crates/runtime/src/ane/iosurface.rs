//! IOSurfaces as flat byte buffers (`Height = 1`, one byte per element): one per tensor.

use super::ffi::Api;
use super::objc::Obj;

/// `kIOSurfaceLockReadOnly`.
const LOCK_READ_ONLY: u32 = 1;

/// One IOSurface of a fixed byte size.
pub struct IoSurface {
    surface: Obj,
    bytes: usize,
    api: &'static Api,
}

impl IoSurface {
    /// A surface of `bytes` bytes: Width = bytes, Height = 1, BytesPerElement = 1,
    /// BytesPerRow = bytes, AllocSize = bytes, PixelFormat = 0 (spec §1).
    pub fn new(api: &'static Api, bytes: usize) -> Result<IoSurface, String> {
        let keys = &api.surface_keys;
        let size = api.number(bytes as i64)?;
        let one = api.number(1)?;
        let zero = api.number(0)?;
        let key = |g: super::ffi::Global| Obj::retained(api, g.0, "kIOSurface key");
        let (width, height, per_element, per_row, alloc, format) = (
            key(keys.width)?,
            key(keys.height)?,
            key(keys.bytes_per_element)?,
            key(keys.bytes_per_row)?,
            key(keys.alloc_size)?,
            key(keys.pixel_format)?,
        );
        let properties = api.dictionary(&[
            (&width, &size),
            (&height, &one),
            (&per_element, &one),
            (&per_row, &size),
            (&alloc, &size),
            (&format, &zero),
        ])?;
        // SAFETY: `properties` is a live CFDictionary; IOSurfaceCreate returns a +1 reference
        // or NULL.
        let ptr = unsafe { (api.surface_create)(properties.ptr()) };
        let surface = Obj::owned(api, ptr, &format!("IOSurfaceCreate({bytes} bytes)"))?;
        // SAFETY: `surface` is a live IOSurface.
        let alloc_size = unsafe { (api.surface_alloc_size)(surface.ptr()) };
        if alloc_size < bytes {
            return Err(format!(
                "IOSurfaceCreate gave {alloc_size} bytes, {bytes} were asked for"
            ));
        }
        Ok(IoSurface {
            surface,
            bytes,
            api,
        })
    }

    /// The `IOSurfaceRef`.
    pub fn ptr(&self) -> super::ffi::IoSurfaceRef {
        self.surface.ptr()
    }

    /// The requested size in bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Copies `src` (at most the surface's size) to the start of the surface.
    pub fn write(&self, src: &[u8]) -> Result<(), String> {
        let n = src.len().min(self.bytes);
        self.locked(0, |base| {
            // SAFETY: the surface is locked for writing and holds at least `self.bytes >= n`
            // bytes at `base`; `src` is a distinct Rust buffer of at least `n` bytes.
            unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), base, n) }
        })
    }

    /// Copies the start of the surface into `dst` (at most the surface's size).
    pub fn read(&self, dst: &mut [u8]) -> Result<(), String> {
        let n = dst.len().min(self.bytes);
        self.locked(LOCK_READ_ONLY, |base| {
            // SAFETY: the surface is locked for reading and holds at least `n` bytes at
            // `base`; `dst` is a distinct Rust buffer of at least `n` bytes.
            unsafe { std::ptr::copy_nonoverlapping(base.cast_const(), dst.as_mut_ptr(), n) }
        })
    }

    /// Runs `f` on the base address while the surface is locked with `options`.
    fn locked(&self, options: u32, f: impl FnOnce(*mut u8)) -> Result<(), String> {
        let api = self.api;
        // SAFETY: the surface is live; a null seed pointer is allowed.
        let status = unsafe { (api.surface_lock)(self.ptr(), options, std::ptr::null_mut()) };
        if status != 0 {
            return Err(format!("IOSurfaceLock failed with status {status:#x}"));
        }
        // SAFETY: the surface is locked, so its base address is valid and stable.
        let base = unsafe { (api.surface_base_address)(self.ptr()) }.cast::<u8>();
        if !base.is_null() {
            f(base);
        }
        // SAFETY: unlocks the lock taken above with the same options.
        let status = unsafe { (api.surface_unlock)(self.ptr(), options, std::ptr::null_mut()) };
        if base.is_null() {
            return Err("IOSurfaceGetBaseAddress returned NULL".to_string());
        }
        if status != 0 {
            return Err(format!("IOSurfaceUnlock failed with status {status:#x}"));
        }
        Ok(())
    }
}
