"""A FIX 4.4 market-data venue for mdhub's FIX feed tests, on QuickFIX.

QuickFIX's SocketAcceptor runs the session layer (Logon, Heartbeat,
TestRequest, ResendRequest, SequenceReset, Logout) with the FIX44 data
dictionary the package ships; this script is the venue's application:

- MarketDataRequest (V) for a known symbol: a snapshot (W) with the best bid,
  offer and last trade, then every `--interval` seconds an incremental
  refresh (X) with a new bid, offer and a trade for every subscribed symbol.
  Prices carry 18 decimals (more digits than an f64 holds).
- V for an unknown symbol: MarketDataRequestReject (Y), reason 0.
- Commands, one per line on stdin (deterministic, the test decides when):
    drop      close the connection without Logout (mid-stream)
    skip N    raise the next outgoing MsgSeqNum by N (the client must ask
              for a resend; QuickFIX answers with SequenceReset-GapFill)
    quit      stop the acceptor (Logout first)
- Everything it sees is appended to `<workdir>/seen.jsonl`, one JSON object
  a line: {"event": "logon"|"logout"|"md_request"|"in", ...} with the
  incoming MsgSeqNum of each message.

Usage: acceptor.py --port P --workdir DIR [--sender VENUE] [--target MDHUB]
"""

import argparse
import json
import os
import sys
import threading
import time

import quickfix as fix
import quickfix44 as fix44

KNOWN = {
    "BTC/USD": (95000, "1.5"),
    "ETH/USD": (3500, "10"),
}


def spec_path():
    """FIX44.xml: shipped with the package, or MDHUB_FIX44_XML."""
    env = os.environ.get("MDHUB_FIX44_XML")
    if env:
        return env
    here = os.path.dirname(fix.__file__)
    for cand in [
        os.path.join(here, "spec", "FIX44.xml"),
        os.path.join(here, "quickfix", "spec", "FIX44.xml"),
        os.path.join(sys.prefix, "share", "quickfix", "FIX44.xml"),
    ]:
        if os.path.exists(cand):
            return cand
    for root, _dirs, files in os.walk(sys.prefix):
        if "FIX44.xml" in files:
            return os.path.join(root, "FIX44.xml")
    raise SystemExit("FIX44.xml not found; set MDHUB_FIX44_XML")


class Log:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.f = open(path, "a", buffering=1)

    def write(self, **event):
        with self.lock:
            self.f.write(json.dumps(event) + "\n")
            self.f.flush()


def price(base, k, offset):
    """`base`.<18 digits>: exact only as text."""
    return "%d.%018d" % (base, k * 10 + offset)


class Venue(fix.Application):
    def __init__(self, log):
        super().__init__()
        self.log = log
        self.lock = threading.Lock()
        self.subs = {}  # session id (str) -> {symbol: req_id}
        self.sessions = {}  # str -> SessionID
        self.tick = 0

    # --- session callbacks -------------------------------------------------
    def onCreate(self, sid):
        self.sessions[sid.toString()] = sid

    def onLogon(self, sid):
        self.log.write(event="logon_complete", session=sid.toString())

    def onLogout(self, sid):
        with self.lock:
            self.subs.pop(sid.toString(), None)
        self.log.write(event="logout", session=sid.toString())

    def toAdmin(self, msg, sid):
        pass

    def toApp(self, msg, sid):
        pass

    def fromAdmin(self, msg, sid):
        mt = msg.getHeader().getField(35)
        seq = int(msg.getHeader().getField(34))
        if mt == "A":
            hb = msg.getField(108) if msg.isSetField(108) else None
            self.log.write(event="logon", seq=seq, heartbeat=hb)
        elif mt == "2":
            self.log.write(event="resend_request", seq=seq,
                           begin=int(msg.getField(7)), end=int(msg.getField(16)))
        self.log.write(event="in", msg_type=mt, seq=seq)

    def fromApp(self, msg, sid):
        mt = msg.getHeader().getField(35)
        seq = int(msg.getHeader().getField(34))
        self.log.write(event="in", msg_type=mt, seq=seq)
        if mt == "V":
            self.on_request(msg, sid, seq)

    # --- market data -------------------------------------------------------
    def on_request(self, msg, sid, seq):
        req_id = msg.getField(262)
        sub_type = msg.getField(263)
        depth = msg.getField(264)
        update_type = msg.getField(265) if msg.isSetField(265) else None
        types = []
        g = fix.Group(267, 269)
        for i in range(1, int(msg.getField(267)) + 1):
            msg.getGroup(i, g)
            types.append(g.getField(269))
        symbols = []
        g = fix.Group(146, 55)
        for i in range(1, int(msg.getField(146)) + 1):
            msg.getGroup(i, g)
            symbols.append(g.getField(55))
        self.log.write(event="md_request", seq=seq, req_id=req_id, sub_type=sub_type,
                       depth=depth, update_type=update_type, entry_types=types,
                       symbols=symbols)
        for sym in symbols:
            if sym not in KNOWN:
                rej = fix.Message()
                rej.getHeader().setField(fix.MsgType("Y"))
                rej.setField(fix.MDReqID(req_id))
                rej.setField(fix.MDReqRejReason("0"))
                rej.setField(fix.Text("Unknown symbol: " + sym))
                fix.Session.sendToTarget(rej, sid)
                continue
            with self.lock:
                self.subs.setdefault(sid.toString(), {})[sym] = req_id
            base, size = KNOWN[sym]
            w = fix.Message()
            w.getHeader().setField(fix.MsgType("W"))
            w.setField(fix.MDReqID(req_id))
            w.setField(fix.Symbol(sym))
            for typ, px, sz in [("0", price(base, 0, 1), size), ("1", price(base, 0, 2), size),
                                ("2", price(base, 0, 3), "0.5")]:
                # The typed group writes its fields in the dictionary's order.
                e = fix44.MarketDataSnapshotFullRefresh.NoMDEntries()
                e.setField(fix.MDEntryType(typ))
                e.setField(fix.StringField(270, px))
                e.setField(fix.StringField(271, sz))
                w.addGroup(e)
            fix.Session.sendToTarget(w, sid)

    def stream(self):
        """One X per subscribed symbol: new bid, new offer, a trade."""
        with self.lock:
            subs = {s: dict(v) for s, v in self.subs.items()}
            self.tick += 1
            k = self.tick
        for sid_str, symbols in subs.items():
            sid = self.sessions.get(sid_str)
            session = fix.Session.lookupSession(sid) if sid else None
            if session is None or not session.isLoggedOn():
                continue
            for sym, req_id in symbols.items():
                base, size = KNOWN[sym]
                x = fix.Message()
                x.getHeader().setField(fix.MsgType("X"))
                x.setField(fix.MDReqID(req_id))
                for action, typ, px, sz, extra in [
                    ("1", "0", price(base, k, 1), size, None),
                    ("1", "1", price(base, k, 2), size, None),
                    ("0", "2", price(base, k, 3), "0.000000000000000001", "T%d" % k),
                ]:
                    e = fix44.MarketDataIncrementalRefresh.NoMDEntries()
                    e.setField(fix.MDUpdateAction(action))
                    e.setField(fix.MDEntryType(typ))
                    if extra:
                        e.setField(fix.MDEntryID(extra))
                    e.setField(fix.Symbol(sym))
                    e.setField(fix.StringField(270, px))
                    e.setField(fix.StringField(271, sz))
                    e.setField(fix.StringField(272, time.strftime("%Y%m%d", time.gmtime())))
                    e.setField(fix.StringField(273, time.strftime("%H:%M:%S.123", time.gmtime())))
                    x.addGroup(e)
                fix.Session.sendToTarget(x, sid)

    # --- commands ----------------------------------------------------------
    def command(self, line):
        parts = line.split()
        if not parts:
            return True
        for sid in list(self.sessions.values()):
            session = fix.Session.lookupSession(sid)
            if session is None:
                continue
            if parts[0] == "drop":
                self.log.write(event="command", command="drop")
                session.disconnect()
            elif parts[0] == "skip":
                n = int(parts[1]) if len(parts) > 1 else 3
                nxt = session.getExpectedSenderNum()
                session.setNextSenderMsgSeqNum(nxt + n)
                self.log.write(event="command", command="skip", skipped_from=nxt, n=n)
        return parts[0] != "quit"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--sender", default="VENUE")
    ap.add_argument("--target", default="MDHUB")
    ap.add_argument("--interval", type=float, default=0.2)
    a = ap.parse_args()
    os.makedirs(a.workdir, exist_ok=True)
    cfg_path = os.path.join(a.workdir, "acceptor.cfg")
    with open(cfg_path, "w") as f:
        f.write(f"""[DEFAULT]
ConnectionType=acceptor
FileStorePath={os.path.join(a.workdir, 'store')}
FileLogPath={os.path.join(a.workdir, 'log')}
StartTime=00:00:00
EndTime=00:00:00
UseDataDictionary=Y
DataDictionary={spec_path()}
ValidateUserDefinedFields=N
ResetOnLogon=N
ResetOnLogout=N
ResetOnDisconnect=N
SocketReuseAddress=Y

[SESSION]
BeginString=FIX.4.4
SenderCompID={a.sender}
TargetCompID={a.target}
SocketAcceptPort={a.port}
""")
    log = Log(os.path.join(a.workdir, "seen.jsonl"))
    app = Venue(log)
    settings = fix.SessionSettings(cfg_path)
    acceptor = fix.SocketAcceptor(app, fix.FileStoreFactory(settings), settings,
                                  fix.FileLogFactory(settings))
    acceptor.start()
    log.write(event="ready", port=a.port)
    print("ready", flush=True)

    stop = threading.Event()

    def ticker():
        while not stop.is_set():
            time.sleep(a.interval)
            try:
                app.stream()
            except Exception as e:  # keep streaming; the test reads the log
                log.write(event="error", error=str(e))

    threading.Thread(target=ticker, daemon=True).start()
    for line in sys.stdin:
        if not app.command(line.strip()):
            break
    stop.set()
    acceptor.stop()
    log.write(event="stopped")


if __name__ == "__main__":
    main()
