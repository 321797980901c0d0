use std::panic::Location;

use super::describe;

#[test]
fn panic_messages_read_like_rusts() {
    let here = Location::caller();
    let line = describe(&"boom", Some(here));
    assert_eq!(line, format!("panicked at {here}: boom"));
    assert_eq!(
        describe(&String::from("formatted 7"), None),
        "panicked: formatted 7"
    );
    assert_eq!(describe(&7_u8, None), "panicked: Box<dyn Any>");
}
