/**
 * A TCP proxy the test controls, to cut the engine off from PostgreSQL without disturbing other
 * test files that share the server: `cut()` drops every open connection and refuses new ones
 * until `restore()`.
 */
import net from "node:net"

export class TcpProxy {
  private readonly sockets = new Set<net.Socket>()
  private down = false
  private constructor(private readonly server: net.Server, readonly port: number) {}

  static start(targetHost: string, targetPort: number): Promise<TcpProxy> {
    return new Promise((resolve) => {
      let proxy: TcpProxy
      const server = net.createServer((client) => {
        if (proxy.down) return client.destroy()
        const upstream = net.connect(targetPort, targetHost)
        for (const socket of [client, upstream]) {
          proxy.sockets.add(socket)
          socket.on("close", () => proxy.sockets.delete(socket))
          socket.on("error", () => {})
        }
        client.pipe(upstream)
        upstream.pipe(client)
        client.on("close", () => upstream.destroy())
        upstream.on("close", () => client.destroy())
      })
      server.listen(0, "127.0.0.1", () => {
        proxy = new TcpProxy(server, (server.address() as net.AddressInfo).port)
        resolve(proxy)
      })
    })
  }

  cut(): void {
    this.down = true
    for (const socket of this.sockets) socket.destroy()
  }

  restore(): void {
    this.down = false
  }

  close(): Promise<void> {
    this.cut()
    return new Promise((resolve) => this.server.close(() => resolve()))
  }
}
