//! Micro-benchmarks of the per-message CPU work in the SDK: signing, rendering
//! a message into a platform payload, and callback crypto.
//!
//! `cargo bench -p imrelay-sdk --bench hot_paths` (figures in BENCHMARKS.md).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use imrelay_sdk::crypto::feishu::FeishuCipher;
use imrelay_sdk::crypto::wxbiz::{self, AesKey};
use imrelay_sdk::{sign, Client, Message};
use serde_json::json;

const DT_SECRET: &str = "SEC000000000000000000000000000000000000000000000000000000000000000";
// 43 characters, the length WeCom/DingTalk EncodingAESKeys have.
const AES_KEY: &str = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG";

fn signing(c: &mut Criterion) {
    let body = br#"{"type":"message","data":{"channel":"alerts","text":"disk 91% full"}}"#;
    c.bench_function("sign/dingtalk_robot", |b| {
        b.iter(|| sign::dingtalk_robot(black_box(DT_SECRET), black_box(1_700_000_000_000)))
    });
    c.bench_function("sign/feishu_webhook", |b| {
        b.iter(|| sign::feishu_webhook(black_box("feishu-secret"), black_box(1_700_000_000)))
    });
    c.bench_function("sign/standard_webhook", |b| {
        b.iter(|| {
            sign::standard_webhook(
                black_box("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
                black_box("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"),
                black_box(1_700_000_000),
                black_box(body),
            )
        })
    });
}

fn rendering(c: &mut Criterion) {
    let client = Client::new().expect("client");
    let text = Message::text("disk 91% full on db-1 告警 ".repeat(8));
    let md = Message::markdown(
        "Disk",
        "## db-1\n- **disk**: 91%\n- [runbook](https://example.com/rb)\n".repeat(4),
    );
    for (kind, config) in [
        (
            "dingtalk_robot",
            json!({"type": "dingtalk_robot", "access_token": "t", "secret": DT_SECRET}),
        ),
        (
            "feishu_webhook",
            json!({"type": "feishu_webhook", "hook": "abc-123"}),
        ),
        ("wecom_robot", json!({"type": "wecom_robot", "key": "k"})),
    ] {
        let dest = client.build(&config).expect(kind);
        c.bench_function(&format!("render/{kind}/text"), |b| {
            b.iter(|| dest.render(black_box(&text)).expect("render"))
        });
        c.bench_function(&format!("render/{kind}/markdown"), |b| {
            b.iter(|| dest.render(black_box(&md)).expect("render"))
        });
    }
}

fn crypto(c: &mut Criterion) {
    let plain = r#"{"EventType":"check_url","TimeStamp":1700000000,"text":"disk 91% full"}"#;
    let key = AesKey::from_encoding_aes_key(AES_KEY).expect("key");
    let sealed = wxbiz::encrypt(&key, plain, "ding-corp").expect("encrypt");
    c.bench_function("crypto/wxbiz_encrypt", |b| {
        b.iter(|| wxbiz::encrypt(&key, black_box(plain), "ding-corp").expect("encrypt"))
    });
    c.bench_function("crypto/wxbiz_decrypt", |b| {
        b.iter(|| wxbiz::decrypt(&key, black_box(&sealed), "ding-corp").expect("decrypt"))
    });
    let cipher = FeishuCipher::new("test key").expect("cipher");
    let sealed = cipher.encrypt(plain);
    c.bench_function("crypto/feishu_encrypt", |b| {
        b.iter(|| cipher.encrypt(black_box(plain)))
    });
    c.bench_function("crypto/feishu_decrypt", |b| {
        b.iter(|| cipher.decrypt(black_box(&sealed)).expect("decrypt"))
    });
}

criterion_group!(benches, signing, rendering, crypto);
criterion_main!(benches);
