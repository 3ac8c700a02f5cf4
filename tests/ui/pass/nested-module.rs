mod outer {
    pub mod inner {
        #[smobject::shared_memory(path = "/tmp/telemetry", id = 'a')]
        #[repr(C)]
        pub(crate) struct Telemetry {
            pub seq: u64,
        }

        #[smobject::shared_memory(path = "/tmp/private", id = 'b')]
        #[repr(C)]
        struct Private {
            seq: Seq,
        }

        type Seq = u64;

        pub fn private() {
            let _create: fn() -> smobject::Result<smobject::Shared<Private>> = Private::create;
        }
    }
}

fn main() {
    let _create: fn() -> smobject::Result<smobject::Shared<outer::inner::Telemetry>> =
        outer::inner::Telemetry::open_or_create;
    outer::inner::private();
}
