# frozen_string_literal: true

require "json"

# Where the Comet demo's messages get their ids and are kept for subscribers that ask for
# what they missed (?after=ID, Last-Event-ID), and how they reach this process's
# Thin-style subscribers (async.callback, deferrable bodies, faye sockets).
module MessageLog
  HISTORY = 200

  # One process: ids from a counter, history in an Array, delivery at once.
  class Memory
    def initialize
      @messages = []
      @last_id = 0
    end

    attr_reader :last_id

    def add(text, &deliver)
      message = { "id" => (@last_id += 1), "text" => text }
      @messages << message
      @messages.shift while @messages.size > HISTORY
      deliver.call(message)
      message
    end

    def after(id) = @messages.select { |m| m["id"] > id.to_i }
    def shared? = false
  end

  # Every process of a cluster, and any machine, through Redis (REDIS_URL): ids from INCR,
  # history in a capped list, and a pub/sub channel read by one thread per process, which
  # hands each message to the reactor for this process's Thin-style subscribers (the
  # Lunar::Topic subscribers get theirs natively, through their own Redis topics).
  class Redis
    KEY = "comet:messages"
    CHANNEL = "comet:thin-style"

    def initialize(url, &deliver)
      require "redis"
      @url = url
      @deliver = deliver
      @pid = nil
    end

    def add(text)
      connect
      message = { "id" => @redis.incr("#{KEY}:last_id"), "text" => text }
      json = JSON.generate(message)
      @redis.multi do |tx|
        tx.rpush(KEY, json)
        tx.ltrim(KEY, -HISTORY, -1)
        tx.publish(CHANNEL, json)
      end
      message
    end

    def after(id)
      connect
      @redis.lrange(KEY, 0, -1).map { |json| JSON.parse(json) }.select { |m| m["id"] > id.to_i }
    end

    def last_id
      connect
      @redis.get("#{KEY}:last_id").to_i
    end

    def shared? = true

    private

    # Connections are made in the process that uses them (a cluster forks after loading).
    def connect
      return if @pid == Process.pid

      @pid = Process.pid
      @redis = ::Redis.new(url: @url)
      listener = ::Redis.new(url: @url)
      Thread.new do
        listener.subscribe(CHANNEL) do |on|
          on.message { |_channel, json| EM.schedule { @deliver.call(JSON.parse(json)) } }
        end
      rescue ::Redis::BaseConnectionError => e
        warn "comet demo: Redis subscription lost (#{e.message}); retrying"
        sleep 1
        retry
      end
    end
  end
end
