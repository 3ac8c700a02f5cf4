use smobject::shared_memory;

// Every error is reported at once, each on its own token.
#[shared_memory(path = "relative", id = '0', mode = 0o777, colour = "red")]
#[repr(packed)]
pub struct Telemetry<T> {
    pub value: T,
    pub ready: bool,
    pub name: String,
    pub next: *const u8,
}

fn main() {}
