# frozen_string_literal: true

require "net/http"

# Clients requesting GET `path` over fresh connections, as fast as they can, until stopped:
# "a client hammering the server", counting answers that were 200 and those that were not
# (or never came).
class Hammer
  def initialize(port, path: "/", clients: 4)
    @port = port
    @path = path
    @ok = 0
    @failed = 0
    @done = false
    @count = Mutex.new
    @threads = Array.new(clients) { Thread.new { run } }
  end

  def ok = @count.synchronize { @ok }

  # Stops every client; returns `[ok, failed]`.
  def stop
    @done = true
    @threads.each(&:join)
    [@ok, @failed]
  end

  private

  def run
    until @done
      good = begin
        # No retry: Net::HTTP would quietly repeat a GET whose connection a worker dropped.
        Net::HTTP.start("127.0.0.1", @port, max_retries: 0) { |http| http.get(@path).code == "200" }
      rescue SystemCallError, IOError, Net::ReadTimeout => e
        warn "hammer: #{e.class}: #{e.message}"
        false
      end
      @count.synchronize { good ? @ok += 1 : @failed += 1 }
    end
  end
end
