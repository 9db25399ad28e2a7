//! The SCIM filter and path parser on arbitrary text: it never panics, and whatever it accepts
//! prints to text that parses back to the same tree.
#![no_main]

use libfuzzer_sys::fuzz_target;
use steward_scim::{parse_filter, parse_path};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(filter) = parse_filter(text) {
        let printed = filter.to_string();
        assert_eq!(parse_filter(&printed).as_ref(), Ok(&filter), "{printed}");
        let _ = steward_scim::query::user_cond(&filter);
        let _ = steward_scim::query::group_cond(&filter, false);
    }
    if let Ok(path) = parse_path(text) {
        let printed = path.to_string();
        assert_eq!(parse_path(&printed).as_ref(), Ok(&path), "{printed}");
    }
});
