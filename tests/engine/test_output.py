"""Stop-string matching on streamed text."""

from mlxcli.engine.output import StopMatcher


def feed_all(matcher, pieces):
    out, hit = [], None
    for piece in pieces:
        text, hit = matcher.feed(piece)
        out.append(text)
        if hit:
            break
    return "".join(out), hit


def test_no_stop_strings_passes_text_through():
    assert feed_all(StopMatcher([]), ["a", "b"]) == ("ab", None)


def test_match_split_across_pieces():
    assert feed_all(StopMatcher(["END"]), ["abc E", "N", "D more"]) == ("abc ", "END")


def test_held_prefix_released_when_it_diverges():
    m = StopMatcher(["END"])
    assert m.feed("abc EN") == ("abc ", None)
    assert m.feed("X") == ("ENX", None)


def test_earliest_of_several_stops_wins():
    assert feed_all(StopMatcher(["zz", "b"]), ["a b zz"]) == ("a ", "b")


def test_flush_returns_held_text():
    m = StopMatcher(["STOP"])
    assert m.feed("ST") == ("", None)
    assert m.flush() == "ST"
