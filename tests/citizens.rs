//! Contract v1.2 A2–A6 on the real binary: citizens who are someone.
//! Phone codes through the outbox (one a minute, five a day, three tries,
//! five minutes) and 24-hour phone tokens; the caps of `[halls.citizens]`
//! against one script with one phone and with many phones from one
//! address (IPv6 by its /64), across a restart and across nodes; real-name
//! bookings whose ID number is kept only hashed and masked; messages per
//! phone per day; check-in codes that cannot be guessed. The wall clock is
//! stepped with libfaketime.

mod common;

use common::receiver::{Mode, Receiver};
use common::{eventually, verify_phone, Client, Clock, Db, Resp, Server};

const ADMIN: &str = "laoshan-admin-token-1";
const KIOSK: &str = "laoshan-kiosk-lobby-tok";
const SECRET: &str = "a-test-secret-of-32-characters!!";
const PHONE: &str = "13812345678";
/// 2026-12-01 is a Tuesday.
const TUE_10: &str = "2026-12-01T10:00:00+08:00";
const HALL: &str = "/api/v1/halls/laoshan";

/// A hall behind a trusted proxy (so each request names its address),
/// open on weekdays, that sends messages to `url`; "property" takes
/// bookings (four a slot), "idcard" takes them by real name (A4).
/// `citizens` is the body of `[halls.citizens]`.
fn config(url: &str, citizens: &str) -> String {
    format!(
        r#"
[server.limits]
trusted_proxies = ["127.0.0.1"]
public_per_ip_per_second = 0

[[halls]]
id = "laoshan"
name = "崂山区政务服务大厅"
timezone = "Asia/Shanghai"
admin_token = "{ADMIN}"
mobile_tickets = true
  [halls.hours]
  mon = "09:00-12:00,13:30-17:30"
  tue = "09:00-12:00,13:30-17:30"
  wed = "09:00-12:00,13:30-17:30"
  thu = "09:00-12:00,13:30-17:30"
  fri = "09:00-12:00,13:30-17:30"
  [halls.notify]
  webhook_url = "{url}"
  secret = "{SECRET}"
  [halls.citizens]
{citizens}
  [[halls.floors]]
  number = 1
  name = "1F"
  announce = "silent"
  languages = ["zh", "en"]
  [[halls.services]]
  id = "general"
  name = "综合"
  prefix = "A"
  floor = 1
  zone = "A"
  [[halls.services]]
  id = "property"
  name = "不动产登记"
  prefix = "B"
  floor = 1
  zone = "B"
    [halls.services.appointments]
    per_slot = 4
  [[halls.services]]
  id = "idcard"
  name = "身份证办理"
  prefix = "C"
  floor = 1
  zone = "C"
    [halls.services.appointments]
    require_id = true
  [[halls.windows]]
  id = "1-01"
  label = "1"
  floor = 1
  zone = "A"
  services = ["general", "property", "idcard"]
  token = "laoshan-window-1-01-tok"
  [[halls.kiosks]]
  id = "lobby"
  token = "{KIOSK}"
  [[halls.kiosks]]
  id = "second"
  token = "laoshan-kiosk-second-tok"
"#
    )
}

/// An anonymous POST from client address `from`.
async fn from(c: &Client, addr: &str, path: &str, body: &str) -> Resp {
    c.send(
        "POST",
        &format!("{HALL}{path}"),
        None,
        Some(body),
        &[("x-forwarded-for", addr)],
    )
    .await
}

/// The hall of [`config`] on a stepped clock standing at `at`, with its
/// webhook receiver and a client.
async fn hall(at: &str, citizens: &str) -> (Receiver, Clock, Server, Client) {
    let rx = Receiver::start(Mode::Ok).await;
    let clock = Clock::at(at);
    let s = Server::start_on_clock(Some(&config(&rx.url, citizens)), &clock);
    let c = Client::new(&s);
    (rx, clock, s, c)
}

fn mobile(token: Option<&str>) -> String {
    match token {
        Some(t) => format!(
            r#"{{"service":"general","channel":"mobile","notify":{{"phone_token":"{t}"}}}}"#
        ),
        None => r#"{"service":"general","channel":"mobile"}"#.to_string(),
    }
}

fn booking(service: &str, start: &str, token: &str) -> String {
    format!(r#"{{"service":"{service}","start":"{start}","notify":{{"phone_token":"{token}"}}}}"#)
}

/// A booking from client address `addr` with a verified phone's token.
async fn book(c: &Client, addr: &str, service: &str, start: &str, token: &str) -> Resp {
    from(c, addr, "/appointments", &booking(service, start, token)).await
}

fn limit(r: &Resp, cap: &str) {
    assert_eq!((r.status, r.code()), (409, "limit_reached"), "{}", r.text);
    let m = r.json["error"]["message"].as_str().unwrap();
    assert!(m.starts_with(cap), "the message names the cap {cap}: {m}");
}

async fn waiting(c: &Client) -> u64 {
    let r = c.get(&format!("{HALL}/floors/1")).await;
    r.json["waiting"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["count"].as_u64().unwrap())
        .sum()
}

fn on_postgres() -> bool {
    std::env::var("HALLCAST_TEST_STORE").as_deref() == Ok("postgres")
}

#[tokio::test]
async fn a_phone_proves_itself_with_a_code_sent_through_the_outbox() {
    let (rx, clock, mut s, c) = hall(TUE_10, "").await;
    assert_eq!(c.get(HALL).await.json["verify_phones"], true);

    for bad in ["12345", "23812345678", "+8613812345678", "1381234567x"] {
        let r = from(
            &c,
            "10.0.0.1",
            "/phone-codes",
            &format!(r#"{{"phone":"{bad}"}}"#),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(!r.text.contains(bad), "the number is not echoed");
    }
    let r = from(
        &c,
        "10.0.0.1",
        "/phone-codes",
        &format!(r#"{{"phone":"{PHONE}"}}"#),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["expires_at"], "2026-12-01T10:05:00.000+08:00");
    let m = eventually(10, "the verify message", || async {
        rx.got()
            .into_iter()
            .map(|g| g.json())
            .find(|m| m["kind"] == "verify")
    })
    .await;
    let code = m["code"].as_str().unwrap().to_string();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{m}"
    );
    assert!(m["text"].as_str().unwrap().contains(&code), "{m}");
    assert_eq!(m["phone"], PHONE);
    // One a minute, told when to come back.
    let r = from(
        &c,
        "10.0.0.2",
        "/phone-codes",
        &format!(r#"{{"phone":"{PHONE}"}}"#),
    )
    .await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{}", r.text);

    // Three wrong tries kill the code; then even the right one is refused.
    let verify = |code: String| {
        let c = c.clone();
        async move {
            from(
                &c,
                "10.0.0.1",
                "/phone-codes/verify",
                &format!(r#"{{"phone":"{PHONE}","code":"{code}"}}"#),
            )
            .await
        }
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..3 {
        let r = verify(wrong.to_string()).await;
        assert_eq!(
            (r.status, r.code()),
            (422, "phone_unverified"),
            "{}",
            r.text
        );
    }
    let r = verify(code.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "phone_unverified"),
        "{}",
        r.text
    );

    // A restart keeps the count: still within the minute of the last code.
    s.stop_and_restart();
    let c = Client::new(&s);
    let r = from(
        &c,
        "10.0.0.1",
        "/phone-codes",
        &format!(r#"{{"phone":"{PHONE}"}}"#),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text);

    clock.set("2026-12-01T10:01:01+08:00");
    let token = verify_phone(&c, &rx, "laoshan", PHONE).await;
    // A code is used once.
    let used = rx
        .got()
        .into_iter()
        .map(|g| g.json())
        .rfind(|m| m["kind"] == "verify")
        .unwrap()["code"]
        .as_str()
        .unwrap()
        .to_string();
    let r = from(
        &c,
        "10.0.0.1",
        "/phone-codes/verify",
        &format!(r#"{{"phone":"{PHONE}","code":"{used}"}}"#),
    )
    .await;
    assert_eq!(r.status, 422, "{}", r.text);

    // Without a token a number must come as a phone token: nothing issued.
    let raw =
        format!(r#"{{"service":"general","channel":"mobile","notify":{{"phone":"{PHONE}"}}}}"#);
    let r = from(&c, "10.0.0.1", "/tickets", &raw).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "phone_unverified"),
        "{}",
        r.text
    );
    let r = from(&c, "10.0.0.1", "/tickets", &mobile(Some("made-up-token"))).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "phone_unverified"),
        "{}",
        r.text
    );
    assert_eq!(waiting(&c).await, 0);
    let r = from(&c, "10.0.0.1", "/tickets", &mobile(Some(&token))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let issued = eventually(10, "the issued message", || async {
        rx.got()
            .into_iter()
            .map(|g| g.json())
            .find(|m| m["kind"] == "issued")
    })
    .await;
    assert_eq!(issued["phone"], PHONE, "to the verified phone");
    // Staff vouch for a phone: a kiosk gives it directly.
    let r = c
        .post(
            &format!("{HALL}/tickets"),
            KIOSK,
            r#"{"service":"general","notify":{"phone":"13900000000"}}"#,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Five codes a hall-local day; the sixth waits for tomorrow.
    for i in 2..=4 {
        clock.set(&format!("2026-12-01T10:0{i}:10+08:00"));
        let r = from(
            &c,
            "10.0.0.1",
            "/phone-codes",
            &format!(r#"{{"phone":"{PHONE}"}}"#),
        )
        .await;
        assert_eq!(r.status, 202, "code {}: {}", i + 1, r.text);
    }
    clock.set("2026-12-01T10:06:00+08:00");
    let r = from(
        &c,
        "10.0.0.1",
        "/phone-codes",
        &format!(r#"{{"phone":"{PHONE}"}}"#),
    )
    .await;
    assert_eq!(r.status, 429, "{}", r.text);
    assert!(r.text.contains("tomorrow"), "{}", r.text);

    // A phone token lasts 24 h.
    clock.set("2026-12-02T10:02:00+08:00");
    let r = from(&c, "10.0.0.9", "/tickets", &mobile(Some(&token))).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "phone_unverified"),
        "{}",
        r.text
    );
    let r = from(
        &c,
        "10.0.0.1",
        "/phone-codes",
        &format!(r#"{{"phone":"{PHONE}"}}"#),
    )
    .await;
    assert_eq!(r.status, 202, "a new day: {}", r.text);

    let logs = s.logs();
    assert!(!logs.contains(PHONE), "no phone in the logs");
    assert!(!logs.contains(&token), "no phone token in the logs");
    assert!(
        !logs.contains(&format!("\"{code}\"")),
        "no code in the logs"
    );
    // The outbox lists verify messages with the phone masked, never the code.
    let list = c.get_as(&format!("{HALL}/outbox"), ADMIN).await;
    assert!(list.text.contains("\"verify\""), "{}", list.text);
    assert!(!list.text.contains(PHONE) && !list.text.contains(&code));
}

#[tokio::test]
async fn one_script_cannot_book_out_a_day_with_one_phone_or_many() {
    let (rx, clock, mut s, c) = hall("2026-12-01T08:00:00+08:00", "").await;
    let slot = |day: u32, hh: u32, mm: u32| format!("2026-12-{day:02}T{hh:02}:{mm:02}:00+08:00");

    // A booking without a token needs a verified phone.
    let r = from(
        &c,
        "10.0.0.1",
        "/appointments",
        &format!(r#"{{"service":"property","start":"{}"}}"#, slot(1, 9, 0)),
    )
    .await;
    assert_eq!(
        (r.status, r.code()),
        (422, "phone_unverified"),
        "{}",
        r.text
    );

    // One script, one phone.
    let t = verify_phone(&c, &rx, "laoshan", PHONE).await;
    let r = book(&c, "10.0.0.1", "property", &slot(1, 9, 0), &t).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let first = r.json["token"].as_str().unwrap().to_string();
    let r = book(&c, "10.0.0.1", "property", &slot(1, 9, 30), &t).await;
    limit(&r, "bookings_per_phone_per_date");
    let r = book(&c, "10.0.0.1", "property", &slot(2, 9, 0), &t).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = book(&c, "10.0.0.1", "property", &slot(3, 9, 0), &t).await;
    limit(&r, "open_bookings_per_phone");
    // Cancelling one frees it.
    let r = c
        .send(
            "POST",
            &format!("/api/v1/appointments/{first}/cancel"),
            None,
            Some("{}"),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = book(&c, "10.0.0.1", "property", &slot(3, 9, 0), &t).await;
    assert_eq!(r.status, 201, "{}", r.text);

    // Many phones from one address: 20 bookings a day, whoever's phone.
    let mut made = 3;
    let mut n = 0;
    while made < 20 {
        let phone = format!("1370000{n:04}");
        let t = verify_phone(&c, &rx, "laoshan", &phone).await;
        // Thursday to the next Tuesday's weekdays, a slot each.
        let day = [3, 4, 7, 8][n as usize % 4];
        let start = slot(day, 9 + n / 8, if (n / 4) % 2 == 0 { 0 } else { 30 });
        let r = book(&c, "10.0.0.1", "property", &start, &t).await;
        assert_eq!(r.status, 201, "booking {made}: {}", r.text);
        made += 1;
        n += 1;
    }
    let last = verify_phone(&c, &rx, "laoshan", "13600000000").await;
    let r = book(&c, "10.0.0.1", "property", &slot(8, 14, 0), &last).await;
    limit(&r, "bookings_per_address_per_day");
    // The caps are the hall's: they hold across a restart.
    s.stop_and_restart();
    let c = Client::new(&s);
    let r = book(&c, "10.0.0.1", "property", &slot(8, 14, 0), &last).await;
    limit(&r, "bookings_per_address_per_day");
    // Another address books.
    let r = book(&c, "10.0.0.2", "property", &slot(8, 14, 0), &last).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Tomorrow the address may book again.
    clock.set("2026-12-02T08:00:00+08:00");
    let t2 = verify_phone(&c, &rx, "laoshan", "13600000001").await;
    let r = book(&c, "10.0.0.1", "property", &slot(8, 14, 30), &t2).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Most of the week is still free for everyone else.
    let free: u64 = c
        .get(&format!("{HALL}/services/property/slots?date=2026-12-08"))
        .await
        .json
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["available"].as_u64().unwrap())
        .sum();
    assert!(free > 40, "{free} places left");
}

#[tokio::test]
async fn an_ipv6_client_is_one_address_per_64() {
    let rx = Receiver::start(Mode::Ok).await;
    let clock = Clock::at(TUE_10);
    let cfg = config(
        &rx.url,
        "  mobile_per_address_per_day = 2\n  verify_phones = false",
    )
    .replace(
        "public_per_ip_per_second = 0",
        "public_per_ip_per_second = 3",
    );
    let s = Server::start_on_clock(Some(&cfg), &clock);
    let c = Client::new(&s);
    // Two tickets from one /64, whatever the interface id.
    for a in ["2001:db8:1:2::1", "2001:db8:1:2:aaaa:bbbb:cccc:dddd"] {
        let r = from(&c, a, "/tickets", &mobile(None)).await;
        assert_eq!(r.status, 201, "{a}: {}", r.text);
    }
    let r = from(&c, "2001:db8:1:2::99", "/tickets", &mobile(None)).await;
    limit(&r, "mobile_per_address_per_day");
    // The next /64 is another client.
    let r = from(&c, "2001:db8:1:3::1", "/tickets", &mobile(None)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    // §13's bucket counts the /64 too: three POSTs a second from it.
    let mut limited = false;
    for i in 0..6 {
        let r = from(
            &c,
            &format!("2001:db8:9:9::{i}"),
            "/phone-codes",
            r#"{"phone":"1"}"#,
        )
        .await;
        limited |= r.status == 429;
    }
    assert!(limited, "one bucket for the /64");
}

#[tokio::test]
async fn one_waiting_mobile_ticket_per_phone_and_service() {
    let (rx, _clock, _s, c) = hall(TUE_10, "").await;
    let t = verify_phone(&c, &rx, "laoshan", PHONE).await;
    let r = from(&c, "10.0.0.1", "/tickets", &mobile(Some(&t))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let r = from(&c, "10.0.0.2", "/tickets", &mobile(Some(&t))).await;
    limit(&r, "waiting_mobile_per_phone");
    // Once it is called, the phone may take another.
    let r = c
        .post(
            &format!("{HALL}/windows/1-01/call"),
            "laoshan-window-1-01-tok",
            "{}",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = from(&c, "10.0.0.2", "/tickets", &mobile(Some(&t))).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

#[tokio::test]
async fn messages_to_one_phone_are_capped_per_day_and_the_rest_dropped() {
    let rx = Receiver::start(Mode::Ok).await;
    let clock = Clock::at(TUE_10);
    let s = Server::start_on_clock(
        Some(&config(&rx.url, "  messages_per_phone_per_day = 3")),
        &clock,
    );
    let c = Client::new(&s);
    // A stranger's phone, named by staff four times.
    for _ in 0..4 {
        let r = c
            .post(
                &format!("{HALL}/tickets"),
                KIOSK,
                &format!(r#"{{"service":"general","notify":{{"phone":"{PHONE}"}}}}"#),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let dropped = eventually(10, "the fourth message dropped", || async {
        let r = c
            .get_as(&format!("{HALL}/outbox?status=dropped"), ADMIN)
            .await;
        r.json.as_array().and_then(|a| a.first().cloned())
    })
    .await;
    assert!(
        dropped["last_error"]
            .as_str()
            .unwrap()
            .starts_with("messages_per_phone_per_day"),
        "{dropped}"
    );
    // A code is not counted against the day.
    verify_phone(&c, &rx, "laoshan", PHONE).await;
    eventually(10, "three issued messages and the code", || async {
        (rx.got().len() == 4).then_some(())
    })
    .await;
    let kinds = rx.kinds();
    assert_eq!(
        kinds.iter().filter(|k| *k == "issued").count(),
        3,
        "{kinds:?}"
    );
}

#[tokio::test]
async fn a_real_name_booking_keeps_the_id_number_only_hashed_and_masked() {
    let (rx, _clock, s, c) = hall("2026-12-01T08:00:00+08:00", "").await;
    let id = "11010519491231002X";
    let t = verify_phone(&c, &rx, "laoshan", PHONE).await;
    let start = "2026-12-01T09:00:00+08:00";
    let with = |holder: &str, start: &str| {
        format!(
            r#"{{"service":"idcard","start":"{start}","notify":{{"phone_token":"{t}"}}{holder}}}"#
        )
    };
    let board = c.get(HALL).await;
    assert_eq!(
        board.json["services"][2]["appointments"]["require_id"],
        true
    );
    let r = from(&c, "10.0.0.1", "/appointments", &with("", start)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("holder"), "{}", r.text);
    for bad in [
        "110105194912310021",
        "11010519491231002",
        "1101051949123100XX",
    ] {
        let h = format!(r#","holder":{{"name":"张三","id_number":"{bad}"}}"#);
        let r = from(&c, "10.0.0.1", "/appointments", &with(&h, start)).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text);
        assert!(!r.text.contains(bad), "not echoed: {}", r.text);
    }
    let long = "张".repeat(31);
    let h = format!(r#","holder":{{"name":"{long}","id_number":"{id}"}}"#);
    assert_eq!(
        from(&c, "10.0.0.1", "/appointments", &with(&h, start))
            .await
            .status,
        400
    );
    let holder = format!(r#","holder":{{"name":"张三","id_number":"{id}"}}"#);
    let r = from(&c, "10.0.0.1", "/appointments", &with(&holder, start)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert!(!r.text.contains(id));
    // One open booking per ID number and service (another phone, another
    // day: the same person).
    let t2 = verify_phone(&c, &rx, "laoshan", "13900000000").await;
    let other = format!(
        r#"{{"service":"idcard","start":"2026-12-02T09:00:00+08:00","notify":{{"phone_token":"{t2}"}}{}}}"#,
        holder.replace("张三", "张叁")
    );
    let r = from(&c, "10.0.0.2", "/appointments", &other).await;
    limit(&r, "require_id");
    // A service without real name takes no holder.
    let r = from(
        &c,
        "10.0.0.1",
        "/appointments",
        &format!(
            r#"{{"service":"property","start":"{start}","notify":{{"phone_token":"{t}"}}{holder}}}"#
        ),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text);

    // Staff see the name and the masked number.
    let day = c
        .get_as(&format!("{HALL}/appointments?date=2026-12-01"), ADMIN)
        .await;
    assert_eq!(day.status, 200, "{}", day.text);
    let a = day
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["service"] == "idcard")
        .unwrap();
    assert_eq!(a["holder"]["name"], "张三");
    assert_eq!(a["holder"]["id_number"], "110105********002X");

    // Nowhere whole: not in logs, outbox bodies, the CSV, the store.
    let csv = c
        .get_as(
            &format!("{HALL}/stats.csv?from=2026-12-01&to=2026-12-01"),
            ADMIN,
        )
        .await;
    assert!(!csv.text.contains(id));
    assert!(!s.logs().contains(id), "no ID number in the logs");
    for g in rx.got() {
        assert!(!g.body.contains(id), "no ID number in a message");
    }
    if !on_postgres() {
        let mut bytes = Vec::new();
        for f in ["hallcast.db", "hallcast.db-wal"] {
            bytes.extend(std::fs::read(s.dir.join(f)).unwrap_or_default());
        }
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains(id), "the store keeps no whole ID number");
        assert!(!text.contains("19491231"), "nor its birth date");
        assert!(
            text.contains("110105********002X"),
            "the masked form is kept"
        );
    }
}

#[tokio::test]
async fn check_in_codes_are_not_guessed() {
    let (rx, clock, _s, c) = hall("2026-12-01T08:50:00+08:00", "").await;
    let t = verify_phone(&c, &rx, "laoshan", PHONE).await;
    let r = book(&c, "10.0.0.1", "property", "2026-12-01T09:00:00+08:00", &t).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let code = r.json["code"].as_str().unwrap().to_string();
    let check_in = |token: &'static str, code: String| {
        let c = c.clone();
        async move {
            c.post(
                &format!("{HALL}/check-in"),
                token,
                &format!(r#"{{"code":"{code}"}}"#),
            )
            .await
        }
    };
    for l in "ABCDEFGHJK".chars() {
        let r = check_in(KIOSK, format!("ZZZZZ{l}")).await;
        assert_eq!(r.status, 404, "{}", r.text);
    }
    // The eleventh, even a right one, waits out the ten minutes.
    let r = check_in(KIOSK, code.clone()).await;
    assert_eq!((r.status, r.code()), (429, "rate_limited"), "{}", r.text);
    // Another kiosk is another credential.
    let r = check_in("laoshan-kiosk-second-tok", "ZZZZZZ".into()).await;
    assert_eq!(r.status, 404, "{}", r.text);
    clock.set("2026-12-01T09:00:01+08:00");
    let r = check_in(KIOSK, code).await;
    assert_eq!(r.status, 201, "{}", r.text);
}

/// Caps that must hold across nodes do: three nodes of one cluster, one
/// script spreading its requests over them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scalper_spread_over_three_nodes_gets_no_more_than_from_one() {
    let rx = Receiver::start(Mode::Ok).await;
    let db = Db::new("citizens");
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("hallcast.toml");
    // The nodes read the real clock: the slots are the coming week's.
    let toml = config(&rx.url, "  bookings_per_address_per_day = 4");
    std::fs::write(&cfg, &toml).unwrap();
    let args = vec![
        "--store".to_string(),
        db.url(),
        "--bus".to_string(),
        "nats://127.0.0.1:4222".to_string(),
        "--cluster".to_string(),
        db.name.replace('_', "-"),
        "--cluster-secret-file".to_string(),
        common::cluster_secret_file(tmp.path())
            .display()
            .to_string(),
    ];
    let nodes: Vec<Server> = (0..3)
        .map(|i| Server::spawn_with(&tmp.path().join(format!("n{i}")), Some(&cfg), &[], &args))
        .collect();
    let clients: Vec<Client> = nodes.iter().map(Client::new).collect();
    // Slots a week ahead on weekdays, whatever today is.
    let board = clients[0].get(HALL).await;
    assert_eq!(board.status, 200);
    // The first and the last slot of each date ahead.
    let mut firsts = Vec::new();
    let mut starts = Vec::new();
    for d in 1..=7 {
        let date = (chrono::Utc::now() + chrono::Duration::days(d))
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .format("%Y-%m-%d")
            .to_string();
        let r = clients[0]
            .get(&format!("{HALL}/services/property/slots?date={date}"))
            .await;
        let slots = r.json.as_array().unwrap();
        if let Some(s) = slots.first() {
            firsts.push(s["start"].as_str().unwrap().to_string());
        }
        if let Some(s) = slots.last() {
            starts.push(s["start"].as_str().unwrap().to_string());
        }
    }
    assert!(firsts.len() >= 4, "dates to book");
    // One phone, its requests round robin.
    let t = verify_phone(&clients[0], &rx, "laoshan", PHONE).await;
    let mut ok = 0;
    for (i, start) in firsts.iter().take(4).enumerate() {
        let r = book(&clients[i % 3], "10.0.0.1", "property", start, &t).await;
        if r.status == 201 {
            ok += 1;
        } else {
            assert_eq!(r.code(), "limit_reached", "{}", r.text);
        }
    }
    assert_eq!(ok, 2, "open_bookings_per_phone = 2 over the whole cluster");
    // Many phones from one address: 4 a day in all, whichever node.
    let mut ok_addr = 0;
    for (i, start) in starts.iter().chain(&firsts[1..]).take(6).enumerate() {
        let t = verify_phone(&clients[i % 3], &rx, "laoshan", &format!("1350000000{i}")).await;
        let r = book(&clients[(i + 1) % 3], "10.0.0.7", "property", start, &t).await;
        if r.status == 201 {
            ok_addr += 1;
        } else {
            limit(&r, "bookings_per_address_per_day");
        }
    }
    assert_eq!(
        ok_addr, 4,
        "bookings_per_address_per_day = 4 over the whole cluster"
    );
    // A code's one-a-minute holds on every node.
    let r = from(
        &clients[0],
        "10.0.0.1",
        "/phone-codes",
        r#"{"phone":"13400000000"}"#,
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.text);
    for c in &clients[1..] {
        let r = from(c, "10.0.0.1", "/phone-codes", r#"{"phone":"13400000000"}"#).await;
        assert_eq!(r.status, 429, "{}", r.text);
    }
    drop(nodes);
}
