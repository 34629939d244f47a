//! Run-time symbol lookup: libobjc, Foundation, CoreFoundation, IOSurface and the private
//! AppleNeuralEngine framework, opened with `libloading` so the bridge builds everywhere.
//!
//! Nothing is linked at build time. The libraries are opened once per process (the first
//! [`api`] call) and stay loaded for its lifetime, so every copied function pointer and
//! global address in [`Api`] remains valid.

use libloading::Library;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::OnceLock;

/// The Objective-C runtime.
pub const LIBOBJC: &str = "/usr/lib/libobjc.A.dylib";
/// Foundation (`NSTemporaryDirectory`, `NSError`).
pub const FOUNDATION: &str = "/System/Library/Frameworks/Foundation.framework/Foundation";
/// CoreFoundation (the toll-free bridged data, string, number, dictionary and array types).
pub const CORE_FOUNDATION: &str =
    "/System/Library/Frameworks/CoreFoundation.framework/CoreFoundation";
/// IOSurface (the tensor buffers).
pub const IOSURFACE: &str = "/System/Library/Frameworks/IOSurface.framework/IOSurface";
/// The private framework that drives the Neural Engine.
pub const ANE_FRAMEWORK: &str =
    "/System/Library/PrivateFrameworks/AppleNeuralEngine.framework/AppleNeuralEngine";

/// An Objective-C object pointer (`id`); CoreFoundation objects are toll-free bridged to it.
pub type Id = *mut c_void;
/// An Objective-C selector (`SEL`).
pub type Sel = *mut c_void;
/// `CFIndex` (`signed long`).
pub type CfIndex = isize;
/// `IOSurfaceRef`.
pub type IoSurfaceRef = *mut c_void;

/// A pointer to a process-global object that is never freed: a class, a `CFStringRef`
/// constant, a callbacks table.
#[derive(Clone, Copy, Debug)]
pub struct Global(pub Id);

// SAFETY: the pointee is created once by the system libraries, never mutated by this crate
// and never deallocated while the process runs; sharing the address between threads is sound.
unsafe impl Send for Global {}
// SAFETY: as above; the pointer is only read.
unsafe impl Sync for Global {}

/// A library opened by path, remembered for messages.
pub struct Lib {
    path: &'static str,
    lib: Library,
}

impl Lib {
    /// Opens the library at `path`; the error names the path and the loader's reason.
    pub fn open(path: &'static str) -> Result<Lib, String> {
        // SAFETY: loading runs the library's initializers; only fixed system libraries (and,
        // in tests, the C library) are opened, whose initializers have no preconditions.
        let lib = unsafe { Library::new(path) }.map_err(|e| format!("cannot load {path}: {e}"))?;
        Ok(Lib { path, lib })
    }

    /// The symbol `name` as a `T` (a function pointer or the address of a global).
    ///
    /// # Safety
    /// `T` must be exactly the symbol's C type (for data symbols: a pointer to it).
    pub unsafe fn get<T: Copy>(&self, name: &str) -> Result<T, String> {
        // SAFETY: the caller guarantees `T` matches the symbol; the copy outlives the
        // `Symbol` borrow only as long as `self.lib` stays loaded, which `Api` ensures.
        let symbol = unsafe { self.lib.get::<T>(name.as_bytes()) }
            .map_err(|e| format!("{} has no symbol {name}: {e}", self.path))?;
        Ok(*symbol)
    }

    /// The address of the global `name`, never null.
    pub fn global(&self, name: &str) -> Result<Global, String> {
        // SAFETY: a data symbol is read as its address (`*mut c_void`), which is always sound.
        let address: Id = unsafe { self.get(name) }?;
        if address.is_null() {
            return Err(format!("{} has a null symbol {name}", self.path));
        }
        Ok(Global(address))
    }

    /// The value of the pointer-typed global `name` (e.g. a `const CFStringRef`), never null.
    pub fn global_value(&self, name: &str) -> Result<Global, String> {
        let address = self.global(name)?;
        // SAFETY: `name` is declared as a pointer-sized constant (`CFStringRef`), initialised
        // before the library finished loading; reading it is a plain aligned load.
        let value = unsafe { *(address.0 as *const Id) };
        if value.is_null() {
            return Err(format!("{} symbol {name} holds null", self.path));
        }
        Ok(Global(value))
    }
}

/// The IOSurface property keys (`kIOSurface…` constants).
pub struct SurfaceKeys {
    pub width: Global,
    pub height: Global,
    pub bytes_per_element: Global,
    pub bytes_per_row: Global,
    pub alloc_size: Global,
    pub pixel_format: Global,
}

/// The private framework's classes.
pub struct Classes {
    /// `_ANEInMemoryModelDescriptor`
    pub descriptor: Global,
    /// `_ANEInMemoryModel`
    pub model: Global,
    /// `_ANEIOSurfaceObject`
    pub io_object: Global,
    /// `_ANERequest`
    pub request: Global,
}

/// Every symbol the bridge uses, with the libraries that hold them kept loaded.
pub struct Api {
    /// `SEL sel_registerName(const char *name)`
    pub sel_register_name: unsafe extern "C" fn(*const c_char) -> Sel,
    /// `objc_msgSend`, transmuted to each message's exact signature before a call.
    pub msg_send: unsafe extern "C" fn(),
    /// `id objc_retain(id)`
    pub retain: unsafe extern "C" fn(Id) -> Id,
    /// `void objc_release(id)`
    pub release: unsafe extern "C" fn(Id),
    /// `void *objc_autoreleasePoolPush(void)`
    pub pool_push: unsafe extern "C" fn() -> *mut c_void,
    /// `void objc_autoreleasePoolPop(void *)`
    pub pool_pop: unsafe extern "C" fn(*mut c_void),
    /// `NSString *NSTemporaryDirectory(void)`
    pub temporary_directory: unsafe extern "C" fn() -> Id,
    /// `CFDataRef CFDataCreate(CFAllocatorRef, const UInt8 *, CFIndex)`
    pub data_create: unsafe extern "C" fn(Id, *const u8, CfIndex) -> Id,
    /// `CFStringRef CFStringCreateWithCString(CFAllocatorRef, const char *, CFStringEncoding)`
    pub string_create: unsafe extern "C" fn(Id, *const c_char, u32) -> Id,
    /// `CFNumberRef CFNumberCreate(CFAllocatorRef, CFNumberType, const void *)`
    pub number_create: unsafe extern "C" fn(Id, CfIndex, *const c_void) -> Id,
    /// `CFDictionaryRef CFDictionaryCreate(CFAllocatorRef, const void **keys,
    /// const void **values, CFIndex, const CFDictionaryKeyCallBacks *,
    /// const CFDictionaryValueCallBacks *)`
    pub dictionary_create: unsafe extern "C" fn(Id, *const Id, *const Id, CfIndex, Id, Id) -> Id,
    /// `CFArrayRef CFArrayCreate(CFAllocatorRef, const void **, CFIndex, const CFArrayCallBacks *)`
    pub array_create: unsafe extern "C" fn(Id, *const Id, CfIndex, Id) -> Id,
    /// `&kCFTypeDictionaryKeyCallBacks`
    pub dictionary_key_callbacks: Global,
    /// `&kCFTypeDictionaryValueCallBacks`
    pub dictionary_value_callbacks: Global,
    /// `&kCFTypeArrayCallBacks`
    pub array_callbacks: Global,
    /// `IOSurfaceRef IOSurfaceCreate(CFDictionaryRef properties)`
    pub surface_create: unsafe extern "C" fn(Id) -> IoSurfaceRef,
    /// `kern_return_t IOSurfaceLock(IOSurfaceRef, IOSurfaceLockOptions, uint32_t *seed)`
    pub surface_lock: unsafe extern "C" fn(IoSurfaceRef, u32, *mut u32) -> c_int,
    /// `kern_return_t IOSurfaceUnlock(IOSurfaceRef, IOSurfaceLockOptions, uint32_t *seed)`
    pub surface_unlock: unsafe extern "C" fn(IoSurfaceRef, u32, *mut u32) -> c_int,
    /// `void *IOSurfaceGetBaseAddress(IOSurfaceRef)`
    pub surface_base_address: unsafe extern "C" fn(IoSurfaceRef) -> *mut c_void,
    /// `size_t IOSurfaceGetAllocSize(IOSurfaceRef)`
    pub surface_alloc_size: unsafe extern "C" fn(IoSurfaceRef) -> usize,
    /// The IOSurface property keys.
    pub surface_keys: SurfaceKeys,
    /// The Neural Engine classes.
    pub classes: Classes,
    _libs: Vec<Lib>,
}

/// The process-wide symbol table, loaded on first use; the error says what failed.
pub fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

/// Opens every library and resolves every symbol and class.
fn load() -> Result<Api, String> {
    let objc = Lib::open(LIBOBJC)?;
    let foundation = Lib::open(FOUNDATION)?;
    let cf = Lib::open(CORE_FOUNDATION)?;
    let iosurface = Lib::open(IOSURFACE)?;
    let ane = Lib::open(ANE_FRAMEWORK)?;
    // SAFETY: each requested type is the documented C signature quoted on the `Api` field.
    let api = unsafe {
        // `Class objc_getClass(const char *name)`
        let objc_get_class: unsafe extern "C" fn(*const c_char) -> Id =
            objc.get("objc_getClass")?;
        Api {
            sel_register_name: objc.get("sel_registerName")?,
            msg_send: objc.get("objc_msgSend")?,
            retain: objc.get("objc_retain")?,
            release: objc.get("objc_release")?,
            pool_push: objc.get("objc_autoreleasePoolPush")?,
            pool_pop: objc.get("objc_autoreleasePoolPop")?,
            temporary_directory: foundation.get("NSTemporaryDirectory")?,
            data_create: cf.get("CFDataCreate")?,
            string_create: cf.get("CFStringCreateWithCString")?,
            number_create: cf.get("CFNumberCreate")?,
            dictionary_create: cf.get("CFDictionaryCreate")?,
            array_create: cf.get("CFArrayCreate")?,
            dictionary_key_callbacks: cf.global("kCFTypeDictionaryKeyCallBacks")?,
            dictionary_value_callbacks: cf.global("kCFTypeDictionaryValueCallBacks")?,
            array_callbacks: cf.global("kCFTypeArrayCallBacks")?,
            surface_create: iosurface.get("IOSurfaceCreate")?,
            surface_lock: iosurface.get("IOSurfaceLock")?,
            surface_unlock: iosurface.get("IOSurfaceUnlock")?,
            surface_base_address: iosurface.get("IOSurfaceGetBaseAddress")?,
            surface_alloc_size: iosurface.get("IOSurfaceGetAllocSize")?,
            surface_keys: SurfaceKeys {
                width: iosurface.global_value("kIOSurfaceWidth")?,
                height: iosurface.global_value("kIOSurfaceHeight")?,
                bytes_per_element: iosurface.global_value("kIOSurfaceBytesPerElement")?,
                bytes_per_row: iosurface.global_value("kIOSurfaceBytesPerRow")?,
                alloc_size: iosurface.global_value("kIOSurfaceAllocSize")?,
                pixel_format: iosurface.global_value("kIOSurfacePixelFormat")?,
            },
            classes: Classes {
                descriptor: class(objc_get_class, c"_ANEInMemoryModelDescriptor")?,
                model: class(objc_get_class, c"_ANEInMemoryModel")?,
                io_object: class(objc_get_class, c"_ANEIOSurfaceObject")?,
                request: class(objc_get_class, c"_ANERequest")?,
            },
            _libs: vec![objc, foundation, cf, iosurface, ane],
        }
    };
    Ok(api)
}

/// The class `name`, registered by a loaded framework.
fn class(get: unsafe extern "C" fn(*const c_char) -> Id, name: &CStr) -> Result<Global, String> {
    // SAFETY: `objc_getClass` takes a NUL-terminated name and returns nil when unknown.
    let class = unsafe { get(name.as_ptr()) };
    if class.is_null() {
        return Err(format!(
            "class {} not found after loading {ANE_FRAMEWORK}",
            name.to_string_lossy()
        ));
    }
    Ok(Global(class))
}

// Every test here is about running where the framework is absent.
#[cfg(all(test, not(target_os = "macos")))]
mod tests {
    use super::*;

    #[test]
    fn api_names_the_first_missing_library() {
        let Err(err) = api() else {
            panic!("an Objective-C runtime loaded off macOS")
        };
        assert!(
            err.starts_with(&format!("cannot load {LIBOBJC}: ")),
            "{err}"
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn missing_symbol_names_library_and_symbol() {
        let libc = Lib::open("libc.so.6").expect("the C library loads on Linux");
        // SAFETY: the symbol does not exist, so the type is never used.
        let err = unsafe { libc.get::<unsafe extern "C" fn()>("objc_msgSend") }.unwrap_err();
        assert!(
            err.starts_with("libc.so.6 has no symbol objc_msgSend"),
            "{err}"
        );
        let found: Result<unsafe extern "C" fn() -> c_int, String> =
            // SAFETY: `int getpid(void)` (pid_t is int on Linux).
            unsafe { libc.get("getpid") };
        assert!(found.is_ok());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn global_value_reads_a_pointer_constant() {
        let libc = Lib::open("libc.so.6").expect("the C library loads on Linux");
        let environ = libc
            .global_value("environ")
            .expect("libc exports a non-null environ");
        assert!(!environ.0.is_null());
        assert!(libc.global("no_such_global_orion").is_err());
    }
}
