//! A trading bot's skeleton on `mdhub_client`: a simple moving average of the
//! last N trade prices per symbol, printed live, with a signal when the last
//! price crosses it. It survives gateway restarts without missing a trade
//! (the client resumes from its positions).
//!
//! ```text
//! cargo run -p mdhub_client --example sma_bot -- ws://127.0.0.1:8080/v1/ws AAPL BTC-USDT
//! SMA_WINDOW=50 cargo run -p mdhub_client --example sma_bot -- ws://127.0.0.1:8080/v1/ws AAPL
//! ```

use std::collections::{HashMap, VecDeque};

use mdhub_client::{Client, ClientConfig, ClientEvent};
use mdhub_types::{Decimal, Event, Topic};

/// The last `window` prices of one symbol and their exact sum.
struct Sma {
    window: usize,
    prices: VecDeque<Decimal>,
    sum: Decimal,
    above: Option<bool>,
}

impl Sma {
    fn new(window: usize) -> Sma {
        Sma {
            window,
            prices: VecDeque::with_capacity(window),
            sum: Decimal::from(0),
            above: None,
        }
    }

    /// Add a price; the average once the window is full.
    fn push(&mut self, price: Decimal) -> Option<Decimal> {
        self.sum = self.sum.checked_add(price)?;
        self.prices.push_back(price);
        if self.prices.len() > self.window {
            let old = self.prices.pop_front()?;
            self.sum = self.sum.checked_sub(old)?;
        }
        (self.prices.len() == self.window).then(|| mean(self.sum, self.window))?
    }
}

/// `sum / n`, exact to four more decimal places than the prices.
fn mean(sum: Decimal, n: usize) -> Option<Decimal> {
    let scale = sum.scale().checked_add(4)?;
    let m = sum.rescaled(scale)?.mantissa() / i128::try_from(n).ok()?;
    Decimal::from_parts(m, scale).ok().map(Decimal::normalized)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: sma_bot WS_URL SYMBOL... (SMA_WINDOW=20)")?;
    let symbols: Vec<String> = args.collect();
    if symbols.is_empty() {
        return Err("name at least one symbol, e.g. AAPL BTC-USDT".into());
    }
    let window: usize = std::env::var("SMA_WINDOW")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or(20)
        .max(1);
    let mut client = Client::connect(ClientConfig::new(url))?;
    client.subscribe(symbols, &[Topic::Trades]).await?;
    let mut sma: HashMap<String, Sma> = HashMap::new();
    while let Some(ev) = client.next().await {
        match ev {
            ClientEvent::Data(d) => {
                let Event::Trade(t) = d.event else { continue };
                let s = sma
                    .entry(t.symbol.to_string())
                    .or_insert_with(|| Sma::new(window));
                let Some(avg) = s.push(t.price) else { continue };
                let above = t.price > avg;
                let signal = match s.above.replace(above) {
                    Some(was) if was != above && above => "  ▲ crossed above",
                    Some(was) if was != above => "  ▼ crossed below",
                    _ => "",
                };
                println!(
                    "{:<10} last {:>14}  sma{window} {:>18}{signal}",
                    t.symbol, t.price, avg
                );
            }
            ClientEvent::Connected { url, resumed, .. } => {
                eprintln!("connected to {url}; resuming {resumed} streams");
            }
            ClientEvent::Disconnected {
                reason, retry_in, ..
            } => eprintln!("disconnected ({reason}); retrying in {retry_in:?}"),
            ClientEvent::Reset { symbol, .. } => {
                // The trades in between are gone: start the average afresh.
                sma.remove(&symbol);
            }
            ClientEvent::Rejected {
                message, symbols, ..
            } => {
                eprintln!("refused {symbols:?}: {message}");
            }
            _ => {}
        }
    }
    Ok(())
}
