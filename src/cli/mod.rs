//! The command line's parts beside `main`: how results are shown ([`render`], pure).

pub mod render;
