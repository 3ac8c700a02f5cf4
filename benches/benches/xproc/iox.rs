//! iceoryx2 0.10: publish-subscribe with busy polling, and events (blocking), each as two
//! services (ping, pong) of 64 B payloads / plain notifications.

use super::{child, KeyFile, Peer, Res};
use iceoryx2::prelude::*;

type Payload = [u64; 8];

fn name(base: &str, dir: &str) -> Res<ServiceName> {
    Ok(format!("smobject-bench/{base}/{dir}").as_str().try_into()?)
}

fn busy_receive(
    sub: &iceoryx2::port::subscriber::Subscriber<ipc::Service, Payload, ()>,
) -> Res<()> {
    let mut patience = super::Patience::spin();
    loop {
        if sub.receive()?.is_some() {
            return Ok(());
        }
        std::hint::spin_loop();
        patience.tick("the iceoryx2 peer")?;
    }
}

pub(super) fn parent(
    variant: &str,
    key: &KeyFile,
    total: u64,
    timed: super::Timed<'_>,
) -> Res<f64> {
    let base = key
        .path()
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    // No config file is used on purpose (defaults); keep its warning out of the table.
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    let ns = if variant == "iox2-pubsub" {
        let ping = node
            .service_builder(&name(&base, "ping")?)
            .publish_subscribe::<Payload>()
            .open_or_create()?;
        let pong = node
            .service_builder(&name(&base, "pong")?)
            .publish_subscribe::<Payload>()
            .open_or_create()?;
        let publisher = ping.publisher_builder().create()?;
        let sub = pong.subscriber_builder().create()?;
        let peer = Peer::spawn(variant, &[base.clone(), total.to_string()])?;
        let ns = timed(&mut |i| {
            publisher.send_copy([i; 8])?;
            busy_receive(&sub)
        })?;
        peer.finish()?;
        ns
    } else {
        let ping = node
            .service_builder(&name(&base, "ping")?)
            .event()
            .open_or_create()?;
        let pong = node
            .service_builder(&name(&base, "pong")?)
            .event()
            .open_or_create()?;
        let notifier = ping.notifier_builder().create()?;
        let listener = pong.listener_builder().create()?;
        let peer = Peer::spawn(variant, &[base.clone(), total.to_string()])?;
        let ns = timed(&mut |_| {
            notifier.notify()?;
            listener.blocking_wait(|_| {})?;
            Ok(())
        })?;
        peer.finish()?;
        ns
    };
    Ok(ns)
}

pub(super) fn child(variant: &str, args: &[String]) -> Res<()> {
    let base: String = super::arg(args, 0)?;
    let total: u64 = super::arg(args, 1)?;
    // No config file is used on purpose (defaults); keep its warning out of the table.
    set_log_level(LogLevel::Error);
    let node = NodeBuilder::new().create::<ipc::Service>()?;
    if variant == "iox2-pubsub" {
        let ping = node
            .service_builder(&name(&base, "ping")?)
            .publish_subscribe::<Payload>()
            .open_or_create()?;
        let pong = node
            .service_builder(&name(&base, "pong")?)
            .publish_subscribe::<Payload>()
            .open_or_create()?;
        let sub = ping.subscriber_builder().create()?;
        let publisher = pong.publisher_builder().create()?;
        child::ready();
        for i in 0..total {
            busy_receive(&sub)?;
            publisher.send_copy([i; 8])?;
        }
    } else {
        let ping = node
            .service_builder(&name(&base, "ping")?)
            .event()
            .open_or_create()?;
        let pong = node
            .service_builder(&name(&base, "pong")?)
            .event()
            .open_or_create()?;
        let listener = ping.listener_builder().create()?;
        let notifier = pong.notifier_builder().create()?;
        child::ready();
        for _ in 0..total {
            listener.blocking_wait(|_| {})?;
            notifier.notify()?;
        }
    }
    Ok(())
}
