# frozen_string_literal: true

# Long-polls held by a Lunar::Topic shared through Redis (REDIS_URL), for bench/cluster.rb:
# GET /poll is answered by the next message on channel "bench-polls" (one
# `redis-cli PUBLISH bench-polls …` reaches every worker's subscribers); GET /stats says
# which process answered and how many polls it holds.
require "json"

TOPIC = Lunar::Topic.new("bench-polls", redis: ENV.fetch("REDIS_URL"), history: 0)

run lambda { |env|
  case env["PATH_INFO"]
  when "/poll" then TOPIC.hold(env)
  when "/stats" then [200, { "content-type" => "application/json" }, [JSON.generate("pid" => Process.pid, "polls" => TOPIC.size)]]
  else [404, {}, []]
  end
}
