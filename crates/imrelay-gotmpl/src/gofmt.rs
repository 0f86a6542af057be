//! Go's fmt as templates reach it: `%v` of every value (also what an action
//! prints), `fmt.Sprint`, `fmt.Sprintln` and `fmt.Sprintf`.

use std::fmt::Write;

use crate::value::Value;

/// Go's `%g` with the shortest precision, as `%v` prints a float64.
pub fn float_g(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the same shortest round-trip digits Go uses.
    let e = format!("{:e}", f.abs());
    let (mant, exp) = e.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("exponent is a number");
    let digits: String = mant.chars().filter(|c| *c != '.').collect();
    let sign = if f < 0.0 { "-" } else { "" };
    // Go: exponent form if exp < -4 || exp >= 6 (precision 6 for shortest %g).
    if !(-4..6).contains(&exp) {
        let mut m = digits[..1].to_string();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let es = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{es}{:02}", exp.abs())
    } else if exp < 0 {
        format!("{sign}0.{}{}", "0".repeat((-exp - 1) as usize), digits)
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            format!("{sign}{}{}", digits, "0".repeat(int_len - digits.len()))
        } else {
            format!("{sign}{}.{}", &digits[..int_len], &digits[int_len..])
        }
    }
}

/// `%.Ne`: Go writes the exponent with a sign and at least two digits.
fn float_e(f: f64, prec: usize) -> String {
    let s = format!("{:.*e}", prec, f);
    let (m, e) = s.split_once('e').expect("{:e} has an exponent");
    let e: i32 = e.parse().expect("exponent is a number");
    format!("{m}e{}{:02}", if e < 0 { '-' } else { '+' }, e.abs())
}

/// `%.Ng`: N significant digits, exponent form when the exponent is < -4 or
/// >= N, trailing zeros removed.
fn float_g_prec(f: f64, prec: usize) -> String {
    if !f.is_finite() || f == 0.0 {
        return float_g(f);
    }
    let e = format!("{:.*e}", prec - 1, f);
    let (mant, exp) = e.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("exponent is a number");
    let trim = |m: &str| -> String {
        if m.contains('.') {
            m.trim_end_matches('0').trim_end_matches('.').to_string()
        } else {
            m.to_string()
        }
    };
    if exp < -4 || exp >= prec as i32 {
        format!(
            "{}e{}{:02}",
            trim(mant),
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        )
    } else {
        let decimals = (prec as i32 - 1 - exp).max(0) as usize;
        trim(&format!("{:.*}", decimals, f))
    }
}

/// `%v`. `top` is false inside containers, where nil prints `<nil>`.
pub fn v(out: &mut String, val: &Value) {
    match val {
        Value::Nil => out.push_str("<nil>"),
        Value::Bool(b) => write!(out, "{b}").unwrap(),
        Value::Int(i) => write!(out, "{i}").unwrap(),
        Value::Float(f) => out.push_str(&float_g(*f)),
        Value::Str(s) => out.push_str(s),
        Value::List(items, _) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                v(out, item);
            }
            out.push(']');
        }
        Value::Map(m, _) => {
            out.push_str("map[");
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                v(out, item);
            }
            out.push(']');
        }
        Value::Struct(s) => {
            out.push('{');
            for (i, (_, item)) in s.fields.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                v(out, item);
            }
            out.push('}');
        }
        Value::Time(t) => out.push_str(&t.go_string()),
    }
}

pub fn to_v(val: &Value) -> String {
    let mut s = String::new();
    v(&mut s, val);
    s
}

/// `fmt.Sprint`: a space between operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = matches!(a, Value::Str(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        v(&mut out, a);
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln`: always spaces, then a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        v(&mut out, a);
    }
    out.push('\n');
    out
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    zero: bool,
    space: bool,
    sharp: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

fn pad(out: &mut String, s: &str, spec: &Spec, numeric: bool) {
    let len = s.chars().count();
    let w = spec.width.unwrap_or(0);
    if len >= w {
        out.push_str(s);
        return;
    }
    let fill = w - len;
    if spec.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && numeric {
        // Zeros go after the sign.
        let (sign, digits) = match s.as_bytes().first() {
            Some(b'-' | b'+' | b' ') => s.split_at(1),
            _ => ("", s),
        };
        out.push_str(sign);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(digits);
    } else if spec.zero {
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(s);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(s);
    }
}

/// Go's strconv.Quote: printable characters stay, others are escaped.
pub fn quote(s: &str) -> String {
    let mut out = String::from('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => write!(out, "\\x{:02x}", c as u32).unwrap(),
            c if !crate::funcs::is_print(c) => {
                if (c as u32) < 0x10000 {
                    write!(out, "\\u{:04x}", c as u32).unwrap()
                } else {
                    write!(out, "\\U{:08x}", c as u32).unwrap()
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn bad_verb(out: &mut String, verb: char, arg: &Value) {
    match arg {
        Value::Nil => write!(out, "%!{verb}(<nil>)").unwrap(),
        a => write!(out, "%!{verb}({}={})", a.type_name(), to_v(a)).unwrap(),
    }
}

fn int_sign(i: i64, spec: &Spec) -> &'static str {
    if i < 0 {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

/// An element inside a container: nil prints `<nil>` whatever the verb.
fn fmt_elem(out: &mut String, verb: char, spec: &Spec, item: &Value) {
    match item {
        Value::Nil => pad(out, "<nil>", spec, false),
        item => fmt_arg(out, verb, spec, item),
    }
}

fn fmt_arg(out: &mut String, verb: char, spec: &Spec, arg: &Value) {
    if verb == 'T' {
        let t = match arg {
            Value::Nil => "<nil>",
            a => a.type_name(),
        };
        return pad(out, t, spec, false);
    }
    // Containers apply the verb (and width) to each element, as Go's fmt does.
    match arg {
        Value::List(items, _) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_elem(out, verb, spec, item);
            }
            out.push(']');
            return;
        }
        Value::Map(m, _) => {
            out.push_str("map[");
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                fmt_arg(out, verb, spec, &Value::str(k.as_str()));
                out.push(':');
                fmt_elem(out, verb, spec, item);
            }
            out.push(']');
            return;
        }
        Value::Struct(st) => {
            out.push('{');
            for (i, (name, item)) in st.fields.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                // `%+v` names the fields.
                if verb == 'v' && spec.plus {
                    out.push_str(name);
                    out.push(':');
                }
                fmt_elem(out, verb, spec, item);
            }
            out.push('}');
            return;
        }
        // time.Time is a Stringer: these verbs format its String().
        Value::Time(t) if matches!(verb, 'v' | 's' | 'q' | 'x' | 'X') => {
            fmt_arg(out, verb, spec, &Value::str(t.go_string()));
            return;
        }
        _ => {}
    }
    match (verb, arg) {
        ('v' | 'g' | 'G', Value::Float(f)) => {
            let mut s = match spec.prec {
                None => float_g(*f),
                Some(p) => float_g_prec(*f, p.max(1)),
            };
            if verb == 'G' {
                s = s.to_uppercase();
            }
            if spec.plus && *f >= 0.0 {
                s.insert(0, '+');
            }
            pad(out, &s, spec, true);
        }
        ('v', Value::Int(i)) | ('d', Value::Int(i)) => {
            let s = format!("{}{}", int_sign(*i, spec), i.unsigned_abs());
            pad(out, &s, spec, true);
        }
        ('v', Value::Str(s)) | ('s', Value::Str(s)) => {
            let s: String = match spec.prec {
                Some(p) => s.chars().take(p).collect(),
                None => s.to_string(),
            };
            pad(out, &s, spec, false);
        }
        ('v', Value::Nil) => pad(out, "<nil>", spec, false),
        ('v', Value::Bool(b)) => pad(out, &b.to_string(), spec, false),
        ('q', Value::Str(s)) => pad(out, &quote(s), spec, false),
        ('q', Value::Int(i)) => match u32::try_from(*i).ok().and_then(char::from_u32) {
            Some(c) => pad(out, &format!("'{c}'"), spec, false),
            None => bad_verb(out, verb, arg),
        },
        ('t', Value::Bool(b)) => pad(out, &b.to_string(), spec, false),
        ('x' | 'X', Value::Str(s)) => {
            // `% x` separates the bytes.
            let sep = if spec.space { " " } else { "" };
            let mut h: String = s
                .bytes()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(sep);
            if verb == 'X' {
                h = h.to_uppercase();
            }
            pad(out, &h, spec, false);
        }
        ('x' | 'X' | 'o' | 'b', Value::Int(i)) => {
            let u = i.unsigned_abs();
            // `%#x` and `%#o` add Go's 0x and 0 prefixes.
            let body = match (verb, spec.sharp) {
                ('x', false) => format!("{u:x}"),
                ('x', true) => format!("0x{u:x}"),
                ('X', false) => format!("{u:X}"),
                ('X', true) => format!("0X{u:X}"),
                ('o', false) => format!("{u:o}"),
                ('o', true) => format!("0{u:o}"),
                _ => format!("{u:b}"),
            };
            pad(out, &format!("{}{}", int_sign(*i, spec), body), spec, true);
        }
        ('U', Value::Int(i)) if *i >= 0 => pad(out, &format!("U+{i:04X}"), spec, false),
        ('c', Value::Int(i)) => match u32::try_from(*i).ok().and_then(char::from_u32) {
            Some(c) => pad(out, &c.to_string(), spec, false),
            None => pad(out, "\u{fffd}", spec, false),
        },
        ('f' | 'F', Value::Float(f)) => {
            let p = spec.prec.unwrap_or(6);
            let mut s = format!("{:.*}", p, f);
            if spec.plus && *f >= 0.0 {
                s.insert(0, '+');
            }
            pad(out, &s, spec, true);
        }
        ('e' | 'E', Value::Float(f)) => {
            let mut s = float_e(*f, spec.prec.unwrap_or(6));
            if spec.plus && *f >= 0.0 {
                s.insert(0, '+');
            }
            if verb == 'E' {
                s = s.to_uppercase();
            }
            pad(out, &s, spec, true);
        }
        _ => bad_verb(out, verb, arg),
    }
}

/// `fmt.Sprintf` for the verbs templates use: v s d q t x X o b c f F e g %,
/// with flags `-+0 #`, width and precision.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next_arg = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                '#' => spec.sharp = true,
                _ => break,
            }
            chars.next();
        }
        let num = |chars: &mut std::iter::Peekable<std::str::Chars>| {
            let mut n: Option<usize> = None;
            while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                n = Some(n.unwrap_or(0) * 10 + d as usize);
                chars.next();
            }
            n
        };
        spec.width = num(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(num(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next_arg) else {
            write!(out, "%!{verb}(MISSING)").unwrap();
            continue;
        };
        next_arg += 1;
        fmt_arg(&mut out, verb, &spec, arg);
    }
    if next_arg < args.len() {
        out.push_str("%!(EXTRA ");
        for (i, a) in args[next_arg..].iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            match a {
                Value::Nil => out.push_str("<nil>"),
                a => write!(out, "{}={}", a.type_name(), to_v(a)).unwrap(),
            }
        }
        out.push(')');
    }
    out
}
