//! Owned Objective-C / CoreFoundation objects, autorelease pools, and the Foundation values
//! (data, strings, numbers, dictionaries, arrays, errors) the bridge passes to the framework.
//!
//! CoreFoundation `Create` results are toll-free bridged to `NSData`, `NSString`, `NSNumber`,
//! `NSDictionary` and `NSArray`, so they are built with plain C calls and no message sends.

use super::ffi::{Api, Id, Sel};
use std::ffi::{c_char, c_void, CStr, CString};
use std::path::PathBuf;
use std::ptr::null_mut;

/// `kCFStringEncodingUTF8`.
const UTF8: u32 = 0x0800_0100;
/// `kCFNumberSInt64Type`.
const SINT64: isize = 4;

/// One strong reference to an Objective-C or CoreFoundation object, released on drop.
pub struct Obj {
    ptr: Id,
    api: &'static Api,
}

impl Obj {
    /// Takes over a +1 reference (a `Create`/`new` result); `what` names the call for nil.
    pub fn owned(api: &'static Api, ptr: Id, what: &str) -> Result<Obj, String> {
        if ptr.is_null() {
            return Err(format!("{what} returned nil"));
        }
        Ok(Obj { ptr, api })
    }

    /// Retains an object we do not own (an autoreleased factory result).
    pub fn retained(api: &'static Api, ptr: Id, what: &str) -> Result<Obj, String> {
        if ptr.is_null() {
            return Err(format!("{what} returned nil"));
        }
        // SAFETY: `ptr` is a live object (just returned to us, its pool not yet drained).
        let ptr = unsafe { (api.retain)(ptr) };
        Ok(Obj { ptr, api })
    }

    /// The raw pointer, valid while `self` lives.
    pub fn ptr(&self) -> Id {
        self.ptr
    }
}

impl Drop for Obj {
    fn drop(&mut self) {
        // SAFETY: `self` holds exactly one strong reference, given up here once.
        unsafe { (self.api.release)(self.ptr) }
    }
}

/// An autorelease pool, drained on drop: wraps every call that returns autoreleased objects.
pub struct Pool {
    token: *mut c_void,
    api: &'static Api,
}

impl Pool {
    /// Pushes a pool on this thread.
    pub fn push(api: &'static Api) -> Pool {
        // SAFETY: no preconditions; the token is popped exactly once, on drop.
        let token = unsafe { (api.pool_push)() };
        Pool { token, api }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: `token` came from the matching push on this thread (`Pool` is `!Send`).
        unsafe { (self.api.pool_pop)(self.token) }
    }
}

impl Api {
    /// The selector `name`.
    pub fn sel(&self, name: &CStr) -> Sel {
        // SAFETY: `sel_registerName` takes any NUL-terminated name and never fails.
        unsafe { (self.sel_register_name)(name.as_ptr()) }
    }

    /// Sends a message with no arguments that returns an object: `- (id)name`.
    ///
    /// # Safety
    /// `recv` is a live object (or class) whose method `name` has exactly that signature.
    pub unsafe fn send_id(&self, recv: Id, name: &CStr) -> Id {
        // SAFETY: objc_msgSend called as `id (*)(id, SEL)`, the caller's promised signature.
        let f: unsafe extern "C" fn(Id, Sel) -> Id = unsafe { std::mem::transmute(self.msg_send) };
        unsafe { f(recv, self.sel(name)) }
    }

    /// The text of an `NSString` (`- (const char *)UTF8String`).
    ///
    /// # Safety
    /// `string` is nil or a live `NSString`.
    pub unsafe fn string_text(&self, string: Id) -> Option<String> {
        if string.is_null() {
            return None;
        }
        // SAFETY: objc_msgSend as `const char *(*)(id, SEL)`, the signature of UTF8String.
        let f: unsafe extern "C" fn(Id, Sel) -> *const c_char =
            unsafe { std::mem::transmute(self.msg_send) };
        let text = unsafe { f(string, self.sel(c"UTF8String")) };
        if text.is_null() {
            return None;
        }
        // SAFETY: UTF8String returns a NUL-terminated buffer that lives as long as the
        // enclosing autorelease pool; it is copied out at once.
        Some(
            unsafe { CStr::from_ptr(text) }
                .to_string_lossy()
                .into_owned(),
        )
    }

    /// An error's message: `localizedDescription` and `code` of an `NSError`.
    ///
    /// # Safety
    /// `error` is nil or a live `NSError` (call inside the pool that owns it).
    pub unsafe fn error_text(&self, error: Id) -> String {
        if error.is_null() {
            return "no NSError was returned".to_string();
        }
        // SAFETY: `localizedDescription` is `- (NSString *)localizedDescription`.
        let description = unsafe { self.string_text(self.send_id(error, c"localizedDescription")) };
        // SAFETY: objc_msgSend as `NSInteger (*)(id, SEL)`, the signature of `- (NSInteger)code`.
        let code_fn: unsafe extern "C" fn(Id, Sel) -> isize =
            unsafe { std::mem::transmute(self.msg_send) };
        let code = unsafe { code_fn(error, self.sel(c"code")) };
        format!(
            "{} (code {code})",
            description.unwrap_or_else(|| "an error without description".to_string())
        )
    }

    /// `NSTemporaryDirectory()` as a path.
    pub fn temporary_dir(&'static self) -> Result<PathBuf, String> {
        let _pool = Pool::push(self);
        // SAFETY: `NSString *NSTemporaryDirectory(void)` has no preconditions; its result is
        // autoreleased into `_pool` and read before the pool drains.
        let text = unsafe { self.string_text((self.temporary_directory)()) };
        text.map(PathBuf::from)
            .ok_or_else(|| "NSTemporaryDirectory() returned nil".to_string())
    }

    /// An `NSData` holding a copy of `bytes`.
    pub fn data(&'static self, bytes: &[u8]) -> Result<Obj, String> {
        // SAFETY: `bytes` is valid for its length; CFDataCreate copies it. Allocator NULL is
        // the default allocator.
        let ptr = unsafe { (self.data_create)(null_mut(), bytes.as_ptr(), bytes.len() as isize) };
        Obj::owned(self, ptr, "CFDataCreate")
    }

    /// An `NSString` holding `text`.
    pub fn string(&'static self, text: &str) -> Result<Obj, String> {
        let c = CString::new(text).map_err(|_| format!("string {text:?} holds a NUL byte"))?;
        // SAFETY: `c` is NUL-terminated UTF-8 and outlives the call, which copies it.
        let ptr = unsafe { (self.string_create)(null_mut(), c.as_ptr(), UTF8) };
        Obj::owned(self, ptr, "CFStringCreateWithCString")
    }

    /// An `NSNumber` holding `value` as a 64-bit signed integer.
    pub fn number(&'static self, value: i64) -> Result<Obj, String> {
        // SAFETY: `kCFNumberSInt64Type` reads an `i64` from the pointer, which is valid.
        let ptr = unsafe {
            (self.number_create)(null_mut(), SINT64, (&value as *const i64).cast::<c_void>())
        };
        Obj::owned(self, ptr, "CFNumberCreate")
    }

    /// An `NSDictionary` of the given key/value pairs (empty for none — never nil).
    pub fn dictionary(&'static self, entries: &[(&Obj, &Obj)]) -> Result<Obj, String> {
        let keys: Vec<Id> = entries.iter().map(|(k, _)| k.ptr()).collect();
        let values: Vec<Id> = entries.iter().map(|(_, v)| v.ptr()).collect();
        // SAFETY: both arrays hold `len` live objects; the CFType callbacks retain each key
        // and value, so the dictionary stays valid after `entries` are dropped.
        let ptr = unsafe {
            (self.dictionary_create)(
                null_mut(),
                keys.as_ptr(),
                values.as_ptr(),
                keys.len() as isize,
                self.dictionary_key_callbacks.0,
                self.dictionary_value_callbacks.0,
            )
        };
        Obj::owned(self, ptr, "CFDictionaryCreate")
    }

    /// An `NSArray` of `items` (retained by the array).
    pub fn array(&'static self, items: &[&Obj]) -> Result<Obj, String> {
        let ptrs: Vec<Id> = items.iter().map(|o| o.ptr()).collect();
        // SAFETY: `ptrs` holds `len` live objects, retained by the CFType array callbacks.
        let ptr = unsafe {
            (self.array_create)(
                null_mut(),
                ptrs.as_ptr(),
                ptrs.len() as isize,
                self.array_callbacks.0,
            )
        };
        Obj::owned(self, ptr, "CFArrayCreate")
    }

    /// An `NSArray` of `NSNumber`s `0..n` (the surface indices of a request).
    pub fn indices(&'static self, n: usize) -> Result<Obj, String> {
        let numbers = (0..n as i64)
            .map(|i| self.number(i))
            .collect::<Result<Vec<_>, _>>()?;
        self.array(&numbers.iter().collect::<Vec<_>>())
    }
}
