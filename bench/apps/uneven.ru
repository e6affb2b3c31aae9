# frozen_string_literal: true

# Uneven work (bench/balance.rb): one request in ten sleeps 50 ms, the rest answer at once.
run lambda { |_env|
  sleep 0.05 if rand(10).zero?
  [200, { "content-type" => "text/plain", "content-length" => "2" }, ["ok"]]
}
