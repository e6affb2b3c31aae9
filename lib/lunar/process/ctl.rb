# frozen_string_literal: true

require "optparse"
require "net/http"
require "socket"
require "uri"

module Lunar
  # `lunarctl`, as `pumactl`: asks a running Lunar through its control app
  # (`-C URL -T TOKEN COMMAND`), or signals it through its pid (`-P PIDFILE` or `-p PID`).
  #
  #   lunarctl -C tcp://127.0.0.1:9293 -T secret stats
  #   lunarctl -P tmp/pids/server.pid phased-restart
  class Ctl
    COMMANDS = %w[stats gc-stats thread-backtraces metrics phased-restart restart stop halt gc status].freeze
    # What a command is as a signal (Lunar's meanings: INT stops at once, USR2 re-executes).
    SIGNALS = { "stop" => "TERM", "halt" => "INT", "restart" => "USR2", "phased-restart" => "USR1" }.freeze
    # Commands whose answer is data, printed after the success line.
    PRINTED = %w[stats gc-stats thread-backtraces metrics].freeze

    class Failure < StandardError; end

    def self.run(argv, out: $stdout)
      new(argv).run(out)
      0
    rescue Failure, OptionParser::ParseError, SystemCallError, IOError, Net::ReadTimeout => e
      warn "lunarctl: #{e.message}"
      1
    end

    def initialize(argv)
      @options = {}
      rest = parser.parse(argv)
      @command = rest.first or raise Failure, "no command given (one of #{COMMANDS.join(', ')})"
      raise Failure, "unknown command #{@command} (one of #{COMMANDS.join(', ')})" unless COMMANDS.include?(@command)
    end

    def run(out)
      return out.puts(via_control_app) if @options[:url]
      return out.puts(via_signal) if @options[:pid] || @options[:pidfile]

      raise Failure, "give -C URL (the control app) or -P PIDFILE / -p PID"
    end

    private

    def parser
      OptionParser.new do |opts|
        opts.banner = "Usage: lunarctl (-C URL [-T TOKEN] | -P PIDFILE | -p PID) #{COMMANDS.join('|')}"
        opts.on("-C", "--control-url URL", "the control app: tcp://HOST:PORT or unix:///PATH") { |v| @options[:url] = v }
        opts.on("-T", "--control-token TOKEN", "its token") { |v| @options[:token] = v }
        opts.on("-P", "--pidfile FILE", "signal the process whose pid FILE holds") { |v| @options[:pidfile] = v }
        opts.on("-p", "--pid PID", Integer, "signal process PID") { |v| @options[:pid] = v }
      end
    end

    def via_control_app
      response = request("/#{@command}?token=#{URI.encode_www_form_component(@options[:token].to_s)}")
      raise Failure, "#{@command} failed: #{response.code} #{response.body}" unless response.code == "200"

      line = "Command #{@command} sent success"
      PRINTED.include?(@command) ? "#{line}\n#{response.body}" : line
    end

    def request(path)
      uri = @options[:url]
      if uri.start_with?("unix://")
        unix_request(uri.delete_prefix("unix://"), path)
      else
        host, port = uri.delete_prefix("tcp://").split(/:(?=\d+\z)/)
        Net::HTTP.start(host.delete("[]"), Integer(port), open_timeout: 5, read_timeout: 30) { |http| http.get(path) }
      end
    end

    # Net::HTTP connects only over TCP: its request and response machinery, over the Unix socket.
    def unix_request(path, target)
      UNIXSocket.open(path) do |socket|
        io = Net::BufferedIO.new(socket, read_timeout: 30)
        request = Net::HTTP::Get.new(target, "host" => "localhost", "connection" => "close")
        request.exec(io, "1.1", target)
        response = Net::HTTPResponse.read_new(io)
        response.reading_body(io, request.response_body_permitted?) { nil }
        response
      end
    end

    def via_signal
      pid = @options[:pid] || Integer(File.read(@options[:pidfile]).strip)
      return status(pid) if @command == "status"

      signal = SIGNALS[@command] or raise Failure, "#{@command} needs the control app (-C URL -T TOKEN)"
      Process.kill(signal, pid)
      "Command #{@command} sent success"
    end

    def status(pid)
      Process.kill(0, pid)
      "Lunar is started"
    rescue Errno::ESRCH
      raise Failure, "Lunar is not running (pid #{pid})"
    end
  end
end
