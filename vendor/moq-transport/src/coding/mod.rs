// SPDX-FileCopyrightText: 2024-2026 Cloudflare Inc., Luke Curley, Mike English and contributors
// SPDX-FileCopyrightText: 2023-2024 Luke Curley and contributors
// SPDX-License-Identifier: MIT OR Apache-2.0

mod bounded_string;
mod decode;
mod encode;
mod hex_dump;
mod integer;
mod kvp;
mod location;
mod string;
mod track_namespace;
mod tuple;
mod varint;

pub use bounded_string::*;
pub use decode::*;
pub use encode::*;
pub use hex_dump::*;
pub use kvp::*;
pub use location::*;
pub use track_namespace::*;
pub use tuple::*;
pub use varint::*;
