// An alignment the tokens cannot show (a field type's): caught at the type level.
use smobject::shared_memory;

use smobject::__private::zerocopy;

#[repr(C, align(8192))]
#[derive(zerocopy::FromBytes, zerocopy::IntoBytes, smobject::Describe)]
#[zerocopy(crate = "smobject::__private::zerocopy")]
pub struct Page {
    pub bytes: [u8; 8192],
}

#[shared_memory(path = "/tmp/telemetry", id = 'a')]
#[repr(C)]
pub struct Telemetry {
    pub page: Page,
}

fn main() {}
